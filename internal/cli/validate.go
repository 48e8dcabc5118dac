package cli

import (
	"fmt"
	"io"
	"os"

	"github.com/claude-guardian/claude-guardian/envoy/validate"
)

const validateUsage = `Usage: guardian validate envoy FILE...

Checks Envoy bootstrap YAML as Envoy would before running it: parsed with
go-control-plane v1.40's protos (unknown fields and unregistered typed_config
types are errors), every message validated including those inside
typed_config, plus the checks Envoy makes only in C++ (ext_proc mode rules,
cluster references, upstream filter chains ending in upstream_codec, HTTP/2
for gRPC clusters) and guardian's contract with its processors (processing
modes, x-guardian-role, the x-guardian-backend values, metadata namespace).
Prints "FILE: ok" or every problem; exits 1 when any file is invalid.
`

func validateCommand(args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 && (args[0] == "-h" || args[0] == "--help") {
		fmt.Fprint(stdout, validateUsage)
		return nil
	}
	if len(args) < 2 || args[0] != "envoy" {
		return usageError{"validate: want 'validate envoy FILE...' (see guardian validate --help)"}
	}
	bad := 0
	for _, f := range args[1:] {
		data, err := os.ReadFile(f)
		if err == nil {
			_, err = validate.Bootstrap(data)
		}
		if err != nil {
			bad++
			fmt.Fprintf(stderr, "%s: invalid:\n%v\n", f, err)
			continue
		}
		fmt.Fprintf(stdout, "%s: ok\n", f)
	}
	if bad > 0 {
		return fmt.Errorf("validate: %d of %d files invalid", bad, len(args)-1)
	}
	return nil
}

package cli

import (
	"fmt"
	"io"
	"os"

	"github.com/claude-guardian/claude-guardian/envoy/validate"
)

const validateUsage = `Usage: guardian validate envoy FILE...
       guardian validate istio FILE...

Checks Envoy bootstrap YAML as Envoy would before running it: parsed with
go-control-plane v1.40's protos (unknown fields and unregistered typed_config
types are errors), every message validated including those inside
typed_config, plus the checks Envoy makes only in C++ (ext_proc mode rules,
cluster references, upstream filter chains ending in upstream_codec, HTTP/2
for gRPC clusters) and guardian's contract with its processors (processing
modes, x-guardian-role, the x-guardian-backend values, metadata namespace).

"istio" checks Kubernetes manifests together: Istio resources against
istio.io/api (unknown fields rejected), every EnvoyFilter patch value as the
Envoy type it becomes (same checks as above), outbound|PORT||HOST clusters
against the Services' grpc-* ports, and guardian.yaml inside its ConfigMap.

Prints "FILE: ok" or every problem; exits 1 when any file is invalid.
`

func validateCommand(args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 && (args[0] == "-h" || args[0] == "--help") {
		fmt.Fprint(stdout, validateUsage)
		return nil
	}
	if len(args) < 2 || (args[0] != "envoy" && args[0] != "istio") {
		return usageError{"validate: want 'validate envoy FILE...' or 'validate istio FILE...' (see guardian validate --help)"}
	}
	if args[0] == "istio" {
		var files []validate.File
		for _, f := range args[1:] {
			data, err := os.ReadFile(f)
			if err != nil {
				return fmt.Errorf("validate: %w", err)
			}
			files = append(files, validate.File{Name: f, Data: data})
		}
		if err := validate.Istio(files); err != nil {
			fmt.Fprintf(stderr, "invalid:\n%v\n", err)
			return fmt.Errorf("validate: istio manifests invalid")
		}
		fmt.Fprintf(stdout, "%d files: ok\n", len(files))
		return nil
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

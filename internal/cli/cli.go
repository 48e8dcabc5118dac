// Package cli is the guardian command line: subcommand parsing, help texts
// and the wiring of a serving process. cmd/guardian only adds signals.
package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
)

const usage = `guardian — keeps applications inside Anthropic's Claude API rate limits,
as an Envoy ext_proc server and rate-limit service.

Usage:
  guardian serve [--config FILE]   run the ext_proc, rate-limit and admin servers
  guardian validate envoy FILE...  check Envoy bootstrap YAML against Envoy's API
  guardian validate istio FILE...  check Istio manifests and their EnvoyFilter patches
  guardian policy test DIR         compile a routing policy directory and run its Rego tests
  guardian policy eval DIR --input FILE  print the policy's decision for an input document
  guardian version                 print the version
  guardian help [COMMAND]          show help

Run 'guardian serve --help' for the serve flags and what it listens on.
`

// Version is set at build time with -ldflags "-X ...cli.Version=…".
var Version = "dev"

// Main runs the command line and returns the process exit code: 0 on
// success (including a graceful stop on SIGTERM), 1 on a runtime failure,
// 2 on a usage error.
func Main(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	var err error
	switch args[0] {
	case "serve":
		err = serveCommand(ctx, args[1:], stdout, stderr)
	case "validate":
		err = validateCommand(args[1:], stdout, stderr)
	case "policy":
		err = policyCommand(ctx, args[1:], stdout, stderr)
	case "version", "--version":
		fmt.Fprintln(stdout, "guardian", Version)
	case "help", "-h", "--help":
		if len(args) > 1 && args[1] == "serve" {
			err = serveCommand(ctx, []string{"--help"}, stdout, stderr)
			break
		}
		fmt.Fprint(stdout, usage)
	default:
		fmt.Fprintf(stderr, "guardian: unknown command %q\n\n%s", args[0], usage)
		return 2
	}
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
		return 0
	case errors.As(err, new(usageError)):
		fmt.Fprintf(stderr, "guardian: %v\n", err)
		return 2
	default:
		fmt.Fprintf(stderr, "guardian: %v\n", err)
		return 1
	}
}

// usageError is a mistake in the command line.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

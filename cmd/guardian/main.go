// Command guardian runs claude-guardian: the Envoy external processor and
// rate-limit service that keep an application inside Anthropic's limits.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/claude-guardian/claude-guardian/internal/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	os.Exit(cli.Main(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

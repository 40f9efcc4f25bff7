// Command supportbot is a Bitrix24 chat bot that turns the messenger into a support
// desk with parallel dialogs. See README.md; the commands are in package cli.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"

	"supportbot/cli"
)

// version is set at build time: -ldflags "-X main.version=1.2.3".
var version = "dev"

// gcPercent is the garbage collector's target when GOGC is not set. The live heap
// is small (tens of MiB) and every event allocates its decoded form, so trading a
// little memory for fewer collections buys intake throughput.
const gcPercent = 400

func main() {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(gcPercent)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := cli.Execute(ctx, version, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "supportbot:", err)
		os.Exit(1)
	}
}

// Package cli is supportbot's command line: one file per command. serve.go wires the
// rooms together once; the configuration is loaded once, before any command runs.
package cli

import (
	"context"
	"io"
	"log/slog"

	"github.com/spf13/cobra"

	"supportbot/config"
)

// Execute runs the command line in args (without the program name) until ctx ends.
func Execute(ctx context.Context, version string, args []string, stdout, stderr io.Writer) error {
	root := NewRoot(ctx, version, stdout, stderr)
	root.SetArgs(args)
	return root.Execute()
}

// run is what every command shares: the configuration as far as it could be read,
// what is wrong with it, and where to write.
type run struct {
	ctx     context.Context
	version string
	stderr  io.Writer
	cfg     *config.Config
	cfgErr  error

	rotateToken bool // register --rotate-token
}

// logger builds the process logger the configuration asks for.
func (r *run) logger() *slog.Logger {
	opts := &slog.HandlerOptions{Level: r.cfg.SlogLevel()}
	if r.cfg.Log.Format == "json" {
		return slog.New(slog.NewJSONHandler(r.stderr, opts))
	}
	return slog.New(slog.NewTextHandler(r.stderr, opts))
}

// NewRoot builds the command tree. With no subcommand it serves.
func NewRoot(ctx context.Context, version string, stdout, stderr io.Writer) *cobra.Command {
	r := &run{ctx: ctx, version: version, stderr: stderr}
	root := &cobra.Command{
		Use:           "supportbot",
		Short:         "Bitrix24 support bot with parallel dialogs",
		SilenceUsage:  true,
		SilenceErrors: true,
		Args:          cobra.NoArgs,
		// The one place the configuration is loaded. Each command decides what a
		// problem in it means: serve stops, doctor reports it, register can do
		// without the application token.
		PersistentPreRun: func(cmd *cobra.Command, _ []string) {
			r.cfg, r.cfgErr = config.Load(cmd.Flags())
		},
	}
	config.BindFlags(root.PersistentFlags())
	root.SetOut(stdout)
	root.SetErr(stderr)
	serve := serveCommand(r)
	root.RunE = serve.RunE
	root.AddCommand(serve, registerCommand(r), unregisterCommand(r), doctorCommand(r), tokenCommand(r),
		healthcheckCommand(r), versionCommand(r))
	return root
}

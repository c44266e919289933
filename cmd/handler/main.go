// Command handler is modelauth's Azure Functions custom handler. The
// Functions host (or the local host, cmd/funchost) starts it with
// FUNCTIONS_CUSTOMHANDLER_PORT and forwards HTTP requests to it.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/modelauth/modelauth/functions"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := functions.Run(ctx, os.Getenv, os.Stdout, nil); err != nil {
		// stderr: the Functions host logs these lines as errors.
		fmt.Fprintf(os.Stderr, "modelauth: %v\n", err)
		os.Exit(1)
	}
}

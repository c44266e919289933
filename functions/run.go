package functions

// This file runs the custom handler: its HTTP server and its start.

import (
	"cmp"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/modelauth/modelauth/shared/azfunc"
	"github.com/modelauth/modelauth/shared/config"
	"github.com/modelauth/modelauth/shared/keysecret"
)

// NewServer returns the HTTP server the custom handler runs h in.
func NewServer(h http.Handler, log *slog.Logger) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
}

// Run is the custom handler: it reads the app settings through getenv,
// logs JSON to stdout, and serves on 127.0.0.1:FUNCTIONS_CUSTOMHANDLER_PORT
// until ctx is done. ready, if not nil, receives the listening address.
// Bad settings or a bad modelauth.json end it at once with an error; a
// secret store that cannot be reached does not (see [NewApp]): the handler
// serves, readiness included, and retries the store in the background.
func Run(ctx context.Context, getenv func(string) string, stdout io.Writer, ready chan<- string) error {
	s, err := config.LoadSettings(getenv)
	if err != nil {
		return err
	}
	log := slog.New(slog.NewJSONHandler(stdout, &slog.HandlerOptions{Level: s.LogLevel}))
	addr, err := azfunc.ListenAddr(getenv)
	if err != nil {
		return err
	}
	app, err := NewApp(ctx, s, log)
	if err != nil {
		return err
	}
	defer app.Close()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	srv := NewServer(app.Handler(), log)
	log.Info("handler_started", "address", ln.Addr().String(), "pid", os.Getpid(), "services", len(app.Config.Services),
		"store", cmp.Or(s.KeyVaultURL, s.DataDir), "admin_key_secret", keysecret.AdminKeySecret, "store_ready", app.storeReady())
	if ready != nil {
		ready <- ln.Addr().String()
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	log.Info("handler_stopped")
	return nil
}

// Command demomodel is a stand-in scoring service for trying modelauth on
// one machine: `make run` starts it on 127.0.0.1:5001 as the scoringUri of
// the sample services in modelauth.json. It answers POST /score with a
// fixed-rule "prediction" and echoes the X-ModelAuth-* identity modelauth
// sent (and whether an Authorization header came too, never its value), so
// a user can see what an upstream receives.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "demomodel:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("demomodel", flag.ContinueOnError)
	addr := fs.String("addr", "127.0.0.1:5001", "listen address")
	if err := fs.Parse(args); err != nil {
		return err
	}
	log := slog.New(slog.NewJSONHandler(os.Stdout, nil))
	srv := &http.Server{Addr: *addr, Handler: handler(), ReadHeaderTimeout: 5 * time.Second}
	go func() {
		<-ctx.Done()
		srv.Shutdown(context.Background())
	}()
	log.Info("demomodel_listening", "url", "http://"+*addr+"/score")
	if err := srv.ListenAndServe(); err != http.ErrServerClosed {
		return err
	}
	return nil
}

// handler scores {"data": [[numbers...], ...]}: each row's prediction is
// the sum of its values, rounded.
func handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.HasPrefix(r.URL.Path, "/score") {
			http.NotFound(w, r)
			return
		}
		var in struct {
			Data [][]float64 `json:"data"`
		}
		body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		if len(body) > 0 {
			if err := json.Unmarshal(body, &in); err != nil {
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(http.StatusBadRequest)
				fmt.Fprintln(w, `{"error":"the body must be {\"data\": [[numbers]]}"}`)
				return
			}
		}
		preds := make([]float64, len(in.Data))
		for i, row := range in.Data {
			for _, v := range row {
				preds[i] += v
			}
		}
		caller := map[string]string{}
		for k, v := range r.Header {
			if name := strings.ToLower(k); strings.HasPrefix(name, "x-modelauth-") || strings.HasPrefix(name, "x_modelauth_") {
				caller[k] = strings.Join(v, ",")
			}
		}
		w.Header().Set("Content-Type", "application/json")
		// Whether the caller's credentials reached the model (never their
		// value): in front of a model, a gateway should remove them.
		_, auth := r.Header["Authorization"]
		json.NewEncoder(w).Encode(map[string]any{"predictions": preds, "path": r.URL.Path, "caller": caller, "authorization": auth})
	})
}

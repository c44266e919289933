package memstore_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/modelauth/modelauth/shared/secretstore"
	"github.com/modelauth/modelauth/shared/secretstore/memstore"
)

func ExampleOpen() {
	ctx := context.Background()
	store := memstore.Open(nil)
	defer store.Close()

	store.SetSecret(ctx, "Svc-Iris", secretstore.SetParams{Value: "first", Enabled: true})
	store.SetSecret(ctx, "svc-iris", secretstore.SetParams{Value: "second", Enabled: true})
	sec, _ := store.GetSecret(ctx, "SVC-IRIS", "")
	versions, _ := store.ListVersions(ctx, "svc-iris")
	fmt.Println(sec.Name, sec.Value, len(versions))

	_, err := store.GetSecret(ctx, "unknown", "")
	fmt.Println(secretstore.Code(err))
	// Output:
	// svc-iris second 2
	// NotFound
}

// A test fails the store at will, and counts the reads, with BeforeFn.
func ExampleOptions_beforeFn() {
	ctx := context.Background()
	var (
		reads     atomic.Int64
		throttled atomic.Bool
	)
	store := memstore.Open(&memstore.Options{
		BeforeFn: func(_ context.Context, op, name string) error {
			if op == memstore.OpGet {
				reads.Add(1)
			}
			if throttled.Load() {
				return &memstore.Error{Code: secretstore.Throttled, RetryAfter: 10 * time.Second}
			}
			return nil
		},
	})
	defer store.Close()

	store.SetSecret(ctx, "key", secretstore.SetParams{Value: "v", Enabled: true})
	throttled.Store(true)
	_, err := store.GetSecret(ctx, "key", "")
	retryAfter, _ := secretstore.IsThrottled(err)
	fmt.Println(secretstore.Code(err), retryAfter)
	fmt.Println(reads.Load(), "read")
	// Output:
	// Throttled 10s
	// 1 read
}

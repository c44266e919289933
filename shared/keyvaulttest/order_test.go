package keyvaulttest_test

import (
	"slices"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azsecrets"

	"github.com/modelauth/modelauth/shared/keyvaulttest"
)

// TestListOrders lists seven versions, on pages of two, under each listing
// order: every version once, in the order set, the same for every listing.
func TestListOrders(t *testing.T) {
	for _, tt := range []struct {
		name  string
		order keyvaulttest.ListOrder
	}{{"oldest-first", keyvaulttest.OldestFirst}, {"version-id", keyvaulttest.VersionIDOrder}, {"random", keyvaulttest.RandomOrder}} {
		t.Run(tt.name, func(t *testing.T) {
			kv := keyvaulttest.NewServer(t, &keyvaulttest.Options{ListOrder: tt.order, ListSeed: 3, PageSize: 2})
			client := newClient(t, kv, newCredential(t, kv, 0), nil)
			ctx := ctxTimeout(t, 15*time.Second)
			var written []string
			for range 7 {
				set, err := client.SetSecret(ctx, "listed", azsecrets.SetSecretParameters{Value: ptr("v")}, nil)
				if err != nil {
					t.Fatal(err)
				}
				written = append(written, set.ID.Version())
			}
			list := func() []string {
				var listed []string
				pager := client.NewListSecretPropertiesVersionsPager("listed", nil)
				for pager.More() {
					page, err := pager.NextPage(ctx)
					if err != nil {
						t.Fatal(err)
					}
					for _, p := range page.Value {
						listed = append(listed, p.ID.Version())
					}
				}
				return listed
			}
			first := list()
			if again := list(); !slices.Equal(first, again) {
				t.Errorf("two listings of the same versions differ: %v, %v", first, again)
			}
			want := slices.Clone(written)
			switch tt.order {
			case keyvaulttest.VersionIDOrder:
				slices.Sort(want)
			case keyvaulttest.RandomOrder:
				sorted, all := slices.Sorted(slices.Values(first)), slices.Sorted(slices.Values(written))
				if !slices.Equal(sorted, all) {
					t.Fatalf("listed %v; want every one of %v once", first, written)
				}
				return
			}
			if !slices.Equal(first, want) {
				t.Errorf("listed %v; want %v", first, want)
			}
		})
	}
}

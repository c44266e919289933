package jwk_test

import (
	"crypto/rsa"
	"fmt"
	"os"

	"github.com/modelauth/modelauth/shared/jwk"
)

// ExampleParseSet reads the public keys of RFC 7517 appendix A.1. The EC key
// is marked "use":"enc", so only the RSA signature key is kept.
func ExampleParseSet() {
	data, err := os.ReadFile("testdata/rfc7517-a1-public.json")
	if err != nil {
		panic(err)
	}
	keys, err := jwk.ParseSet(data)
	if err != nil {
		panic(err)
	}
	for _, k := range keys {
		pub, err := k.PublicKey()
		if err != nil {
			panic(err)
		}
		fmt.Println(k.Kid, k.Kty, k.Alg, pub.(*rsa.PublicKey).N.BitLen())
	}
	// Output: 2011-04-29 RSA RS256 2048
}

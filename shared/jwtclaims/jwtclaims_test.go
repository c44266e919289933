package jwtclaims_test

import (
	"encoding/json"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/modelauth/modelauth/shared/jwtclaims"
)

func TestUnmarshalAccepts(t *testing.T) {
	const in = `{"iss":"https://i/","sub":"alice","aud":["a","b"],"exp":1700000100,"nbf":1700000000.5,"iat":1700000000,` +
		`"jti":"j","roles":["Keys.Read.All"],"tid":"t","oid":"o","azp":"z","appid":"p","extra":{"iss":"nested is not a claim"},"Extra":1}`
	var c jwtclaims.Claims
	if err := json.Unmarshal([]byte(in), &c); err != nil {
		t.Fatalf("Unmarshal = %v", err)
	}
	if c.Issuer != "https://i/" || c.Subject != "alice" || !slices.Equal(c.Audience, []string{"a", "b"}) || c.ID != "j" ||
		!slices.Equal(c.Roles, []string{"Keys.Read.All"}) || c.TID != "t" || c.OID != "o" || c.AZP != "z" || c.AppID != "p" {
		t.Errorf("Unmarshal = %+v", c)
	}
	if got := c.ExpiresAt.Unix(); got != 1700000100 {
		t.Errorf("exp = %d", got)
	}
	if got := c.IssuedAt.Time; !got.Equal(time.Unix(1700000000, 0)) {
		t.Errorf("iat = %v", got)
	}
	var absent jwtclaims.Claims
	if err := json.Unmarshal([]byte(`{"exp":null,"sub":null,"roles":null}`), &absent); err != nil || absent.ExpiresAt != nil || absent.Subject != "" || absent.Roles != nil {
		t.Errorf("null claims = %+v, %v; want absent", absent, err)
	}
	var one jwtclaims.Claims
	if err := json.Unmarshal([]byte(`{"aud":"svc"}`), &one); err != nil || !slices.Equal(one.Audience, []string{"svc"}) {
		t.Errorf("aud as a string = %v, %v", one.Audience, err)
	}
}

// TestCaseVariantAloneIsNotTheClaim: a lone member that differs from a
// claim's name only in case is ignored, as a gateway reading the exact name
// ignores it.
func TestCaseVariantAloneIsNotTheClaim(t *testing.T) {
	var c jwtclaims.Claims
	if err := json.Unmarshal([]byte(`{"ROLES":["Keys.Admin"],"Sub":"root","ISS":"x"}`), &c); err != nil {
		t.Fatal(err)
	}
	if c.Roles != nil || c.Subject != "" || c.Issuer != "" {
		t.Errorf("case variants were read: %+v", c)
	}
}

func TestUnmarshalRefuses(t *testing.T) {
	tests := []struct {
		name, in string
		want     error
	}{
		{"roles twice", `{"roles":["x"],"roles":["Keys.Admin"]}`, jwtclaims.ErrDuplicate},
		{"ROLES after roles", `{"roles":["x"],"ROLES":["Keys.Read.All"]}`, jwtclaims.ErrDuplicate},
		{"roles after ROLES", `{"ROLES":["Keys.Read.All"],"roles":["x"]}`, jwtclaims.ErrDuplicate},
		{"two case variants", `{"Roles":["x"],"ROLES":["y"]}`, jwtclaims.ErrDuplicate},
		{"ISS after iss", `{"iss":"https://good/","ISS":"https://evil/"}`, jwtclaims.ErrDuplicate},
		{"sub with a long s", `{"sub":"a","\u017fub":"b"}`, jwtclaims.ErrDuplicate},
		{"iss with two long s", `{"iss":"a","i\u017f\u017f":"b"}`, jwtclaims.ErrDuplicate},
		{"roles with a long s (6 bytes)", `{"roles":["x"],"role\u017f":["Keys.Admin"]}`, jwtclaims.ErrDuplicate},
		{"escaped name", `{"exp":1,"\u0065xp":2}`, jwtclaims.ErrDuplicate},
		{"aud twice", `{"aud":"a","aud":"b"}`, jwtclaims.ErrDuplicate},
		{"appid twice", `{"appid":"a","APPID":"b"}`, jwtclaims.ErrDuplicate},
		{"exp as a string", `{"exp":"1700000000"}`, jwtclaims.ErrType},
		{"nbf as a string", `{"nbf":"1700000000"}`, jwtclaims.ErrType},
		{"iat as a string", `{"iat":"1700000000"}`, jwtclaims.ErrType},
		{"exp null, then exp", `{"exp":null,"exp":1}`, jwtclaims.ErrDuplicate},
		{"exp true", `{"exp":true}`, jwtclaims.ErrType},
		{"exp negative", `{"exp":-1}`, jwtclaims.ErrType},
		{"exp past year 9999", `{"exp":1e300}`, jwtclaims.ErrType},
		{"exp an object", `{"exp":{"n":1}}`, jwtclaims.ErrType},
		{"sub a number", `{"sub":42}`, jwtclaims.ErrType},
		{"iss an array", `{"iss":["a"]}`, jwtclaims.ErrType},
		{"aud a number", `{"aud":1}`, jwtclaims.ErrType},
		{"aud with a number", `{"aud":["a",1]}`, jwtclaims.ErrType},
		{"aud with null", `{"aud":["a",null]}`, jwtclaims.ErrType},
		{"roles a string", `{"roles":"Keys.Admin"}`, jwtclaims.ErrType},
		{"roles with an object", `{"roles":[{"r":"Keys.Admin"}]}`, jwtclaims.ErrType},
		{"array", `["iss"]`, jwtclaims.ErrNotObject},
		{"string", `"x"`, jwtclaims.ErrNotObject},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var c jwtclaims.Claims
			err := json.Unmarshal([]byte(tt.in), &c)
			if !errors.Is(err, tt.want) {
				t.Fatalf("Unmarshal(%s) = %v; want %v", tt.in, err, tt.want)
			}
		})
	}
}

// TestErrorsQuoteNoValue: the error names the claim, never a value from
// the token.
func TestErrorsQuoteNoValue(t *testing.T) {
	var c jwtclaims.Claims
	err := json.Unmarshal([]byte(`{"sub":"s3cr3t-value","SUB":"other-s3cr3t"}`), &c)
	if err == nil || err.Error() != "jwtclaims: duplicated claim: sub" {
		t.Errorf("error = %v", err)
	}
	err = json.Unmarshal([]byte(`{"exp":"s3cr3t"}`), &c)
	if err == nil || err.Error() != "jwtclaims: claim of the wrong type: exp: not a JSON number" {
		t.Errorf("error = %v", err)
	}
}

func FuzzUnmarshal(f *testing.F) {
	f.Add([]byte(`{"iss":"a","exp":1,"roles":["x"]}`))
	f.Add([]byte(`{"roles":["x"],"ROLES":["y"]}`))
	f.Add([]byte(`{"exp":"1"}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		var c jwtclaims.Claims
		if json.Unmarshal(data, &c) != nil {
			return
		}
		// Accepted: each claim read was a single exact member. Re-encoding
		// what was read and decoding it again gives the same claims.
		out, err := json.Marshal(struct {
			Iss   string   `json:"iss,omitempty"`
			Sub   string   `json:"sub,omitempty"`
			Aud   []string `json:"aud,omitempty"`
			Roles []string `json:"roles,omitempty"`
		}{c.Issuer, c.Subject, c.Audience, c.Roles})
		if err != nil {
			t.Fatal(err)
		}
		var again jwtclaims.Claims
		if err := json.Unmarshal(out, &again); err != nil {
			t.Fatalf("re-decoding %s: %v", out, err)
		}
		if again.Issuer != c.Issuer || again.Subject != c.Subject || !slices.Equal(again.Audience, c.Audience) || !slices.Equal(again.Roles, c.Roles) {
			t.Fatalf("round trip of %q changed the claims", data)
		}
	})
}

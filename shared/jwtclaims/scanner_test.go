package jwtclaims

import (
	"bytes"
	"encoding/json"
	"slices"
	"testing"
)

// reference lists a JSON object's member names and raw values with
// encoding/json's Decoder: slower, and obviously right.
func reference(data []byte) (names, raws []string, ok bool) {
	dec := json.NewDecoder(bytes.NewReader(data))
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return nil, nil, false
	}
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return nil, nil, false
		}
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return nil, nil, false
		}
		names, raws = append(names, t.(string)), append(raws, string(raw))
	}
	return names, raws, true
}

// FuzzMembersAgreeWithDecoder: on every valid JSON object, members yields
// exactly the names and raw values that encoding/json's Decoder reads.
func FuzzMembersAgreeWithDecoder(f *testing.F) {
	f.Add([]byte(`{"iss":"a","exp":1,"roles":["x"],"n":{"iss":[1,{"a":"}"}]}}`))
	f.Add([]byte(` { "\u0073ub" : "a\"b" , "aud" : [ "x" , "y" ] , "t" : true } `))
	f.Add([]byte(`{"\"":[],"sub":"a\"}b","x":"]","y":-1.5e3,"z":null}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		wantNames, wantRaws, ok := reference(data)
		if !ok || !json.Valid(data) {
			return
		}
		var names, raws []string
		err := members(data, func(name string, raw []byte) error {
			names, raws = append(names, name), append(raws, string(raw))
			return nil
		})
		if err != nil || !slices.Equal(names, wantNames) || !slices.Equal(raws, wantRaws) {
			t.Fatalf("%q: members = %q %q, %v; want %q %q", data, names, raws, err, wantNames, wantRaws)
		}
	})
}

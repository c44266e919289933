package oidc

import (
	"net/http"
	"testing"
	"time"
)

func TestCacheLife(t *testing.T) {
	const def = 7 * time.Minute
	tests := []struct {
		name   string
		values []string
		want   time.Duration
	}{
		{"absent", nil, def},
		{"max-age", []string{"max-age=120"}, 2 * time.Minute},
		{"with other directives", []string{"public, max-age=300, must-revalidate"}, 5 * time.Minute},
		{"upper case, spaces", []string{"Public , MAX-AGE = 300"}, 5 * time.Minute},
		{"quoted", []string{`max-age="300"`}, 5 * time.Minute},
		{"split over headers", []string{"public", "max-age=300"}, 5 * time.Minute},
		{"zero, floored", []string{"max-age=0"}, minMaxAge},
		{"huge, capped", []string{"max-age=99999999999999999"}, maxMaxAge},
		{"overflowing int64, capped", []string{"max-age=99999999999999999999"}, maxMaxAge},
		{"overflowing negative", []string{"max-age=-99999999999999999999"}, def},
		{"not a number", []string{"max-age=1h"}, def},
		{"large, capped", []string{"max-age=172800"}, maxMaxAge},
		{"negative", []string{"max-age=-5"}, def},
		{"empty value", []string{"max-age="}, def},
		{"no-store wins", []string{"max-age=300, no-store"}, def},
		{"no-cache", []string{"no-cache"}, def},
		{"s-maxage ignored", []string{"s-maxage=300"}, def},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := http.Header{}
			for _, v := range tt.values {
				h.Add("Cache-Control", v)
			}
			if got := cacheLife(h, def); got != tt.want {
				t.Errorf("cacheLife(%q) = %v; want %v", tt.values, got, tt.want)
			}
		})
	}
}

func TestCheckURL(t *testing.T) {
	tests := []struct {
		url       string
		query, ok bool
	}{
		{"https://login.microsoftonline.com/t/discovery/v2.0/keys", true, true},
		{"https://tenant.b2clogin.com/t/discovery/v2.0/keys?p=b2c_1_signin", true, true},
		{"https://tenant.b2clogin.com/t/v2.0/?p=b2c_1_signin", false, false},
		{"http://127.0.0.1:1234/keys", true, true},
		{"http://[::1]/keys", true, true},
		{"http://LOCALHOST/keys", true, true},
		{"http://10.0.0.1/keys", true, false},
		{"http://example.com/keys", true, false},
		{"https:///keys", true, false},
		{"file:///etc/passwd", true, false},
		{"//example.com/keys", true, false},
		{"https://user@example.com/keys", true, false},
		{"https://example.com/keys#frag", true, false},
		{"https://example.com/keys#", true, false},
		{"https://exa mple.com/", true, false},
	}
	for _, tt := range tests {
		if err := checkURL(tt.url, tt.query); (err == nil) != tt.ok {
			t.Errorf("checkURL(%q, %v) = %v; want ok %v", tt.url, tt.query, err, tt.ok)
		}
	}
}

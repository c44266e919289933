package azfunc

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"
)

func TestParseTime(t *testing.T) {
	tests := []struct {
		in      string
		want    time.Time
		wantErr bool
	}{
		{in: "2026-09-24T13:08:00.0096035+00:00", want: time.Date(2026, 9, 24, 13, 8, 0, 9603500, time.UTC)},
		{in: "2026-09-24T13:08:00Z", want: time.Date(2026, 9, 24, 13, 8, 0, 0, time.UTC)},
		{in: "2026-09-24T13:08:00", want: time.Date(2026, 9, 24, 13, 8, 0, 0, time.UTC)},
		{in: "2026-09-24T13:08:00.0096035", want: time.Date(2026, 9, 24, 13, 8, 0, 9603500, time.UTC)},
		{in: "2026-09-24T13:08:00.1", want: time.Date(2026, 9, 24, 13, 8, 0, 100000000, time.UTC)},
		{in: "2026-09-24T13:08:00.123456789Z", want: time.Date(2026, 9, 24, 13, 8, 0, 123456789, time.UTC)},
		{in: "2026-09-24T15:08:00.5+02:00", want: time.Date(2026, 9, 24, 13, 8, 0, 500000000, time.UTC)},
		{in: "2026-09-24T08:08:00-05:00", want: time.Date(2026, 9, 24, 13, 8, 0, 0, time.UTC)},
		{in: "9999-12-31T23:59:59.9999999", want: time.Date(9999, 12, 31, 23, 59, 59, 999999900, time.UTC)},
		{in: "0001-01-01T00:00:00+00:00"},
		{in: "0001-01-01T00:00:00"},
		{in: "0001-01-01T00:00:00Z"},
		{in: "0001-01-01T00:00:00.0000000-08:00"},
		{in: "0001-01-01T00:00:00+14:00"},
		{in: ""},
		{in: "2026-09-24", wantErr: true},
		{in: "2026-09-24T13:08:00.", wantErr: true},
		{in: "2026-09-24T13:08:00.1234567890Z", wantErr: true},
		{in: "2026-09-24 13:08:00", wantErr: true},
		{in: "9/24/2026 1:08:00 PM", wantErr: true},
		{in: "2026-09-24T13:08:00+0000", wantErr: true},
		{in: "2026-09-24T13:08:00 Z", wantErr: true},
		{in: "2026-09-24T13:08:00+02:00:00", wantErr: true},
		{in: "2026-02-30T00:00:00", wantErr: true},
		{in: "2026-09-24T24:00:00", wantErr: true},
		{in: "2026-09-24T13:08:00+24:00", wantErr: true},
		{in: "0001-01-01T00:30:00+01:00", wantErr: true},
		{in: "9999-12-31T23:30:00-01:00", wantErr: true},
		{in: "null", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseTime(tt.in)
			if tt.wantErr {
				if !errors.Is(err, ErrBadTime) {
					t.Errorf("ParseTime(%q) = %v, %v; want ErrBadTime", tt.in, got, err)
				}
				if err != nil && strings.Contains(err.Error(), tt.in) {
					t.Errorf("ParseTime(%q) error %q quotes its input", tt.in, err)
				}
				return
			}
			if err != nil || !got.Equal(tt.want) || got.Location() != time.UTC {
				t.Errorf("ParseTime(%q) = %v, %v; want %v in UTC", tt.in, got, err, tt.want)
			}
		})
	}
}

func TestTimeUnmarshalJSON(t *testing.T) {
	tests := []struct {
		in   string
		want time.Time
	}{
		{`"2026-09-24T13:08:00.0096035+00:00"`, time.Date(2026, 9, 24, 13, 8, 0, 9603500, time.UTC)},
		{`"2026-09-24T13:08:00"`, time.Date(2026, 9, 24, 13, 8, 0, 0, time.UTC)},
		{`"0001-01-01T00:00:00"`, time.Time{}},
		{`null`, time.Time{}},
		{`""`, time.Time{}},
		{`"9/24/2026 1:08:00 PM"`, time.Time{}},
		{`12345`, time.Time{}},
		{`true`, time.Time{}},
		{`{"a":1}`, time.Time{}},
		{`["2026-09-24T13:08:00Z"]`, time.Time{}},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got := Time{time.Now()} // must be overwritten
			if err := json.Unmarshal([]byte(tt.in), &got); err != nil {
				t.Fatalf("Unmarshal(%s) error: %v", tt.in, err)
			}
			if !got.Time.Equal(tt.want) || got.IsZero() != tt.want.IsZero() {
				t.Errorf("Unmarshal(%s) = %v; want %v", tt.in, got.Time, tt.want)
			}
		})
	}
}

func TestUnixTime(t *testing.T) {
	tests := []struct {
		in       string
		want     time.Time
		wantErr  bool
		wantJSON string // re-encoding; "" means same as in
	}{
		{in: `1559081980`, want: time.Unix(1559081980, 0)},
		{in: `"1559081980"`, want: time.Unix(1559081980, 0), wantJSON: `1559081980`},
		{in: `" 1559081980 "`, want: time.Unix(1559081980, 0), wantJSON: `1559081980`},
		{in: `1559081980.5`, want: time.Unix(1559081980, 500000000)},
		{in: `"1.559081980e9"`, want: time.Unix(1559081980, 0), wantJSON: `1559081980`},
		{in: `-1.25`, want: time.Unix(-2, 750000000)},
		{in: `0`, want: time.Unix(0, 0)},
		{in: `null`, wantJSON: `null`},
		{in: `""`, wantJSON: `null`},
		{in: `"abc"`, wantErr: true},
		{in: `"NaN"`, wantErr: true},
		{in: `"Inf"`, wantErr: true},
		{in: `"0x10"`, wantErr: true},
		{in: `"+5"`, wantErr: true},
		{in: `"1_000"`, wantErr: true},
		{in: `true`, wantErr: true},
		{in: `{}`, wantErr: true},
		{in: `[1]`, wantErr: true},
		{in: `1e20`, wantErr: true},
		{in: `"-99999999999999"`, wantErr: true},
		{in: `253402300800`, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			var got struct{ EXP UnixTime }
			err := json.Unmarshal([]byte(`{"EXP":`+tt.in+`}`), &got)
			if tt.wantErr {
				if !errors.Is(err, ErrMalformed) {
					t.Errorf("Unmarshal(%s) = %v, %v; want ErrMalformed", tt.in, got.EXP.Time, err)
				}
				return
			}
			if err != nil || !got.EXP.Equal(tt.want) || got.EXP.IsZero() != tt.want.IsZero() {
				t.Fatalf("Unmarshal(%s) = %v, %v; want %v", tt.in, got.EXP.Time, err, tt.want)
			}
			b, err := json.Marshal(got.EXP)
			wantJSON := tt.wantJSON
			if wantJSON == "" {
				wantJSON = tt.in
			}
			if err != nil || string(b) != wantJSON {
				t.Errorf("Marshal(%v) = %s, %v; want %s", got.EXP.Time, b, err, wantJSON)
			}
		})
	}
	t.Run("absent", func(t *testing.T) {
		var got KeyVaultEventData
		if err := json.Unmarshal([]byte(`{"Id":"x"}`), &got); err != nil || !got.NBF.IsZero() || !got.EXP.IsZero() {
			t.Errorf("Unmarshal without NBF/EXP = %v, %v, %v; want zero", got.NBF, got.EXP, err)
		}
	})
}

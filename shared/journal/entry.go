package journal

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"maps"
	"strconv"
	"strings"
	"time"

	"github.com/modelauth/modelauth/shared/secretstore"
	"github.com/modelauth/modelauth/shared/secretstore/driver"
)

// An Entry is what validators know of one version of a secret: its
// properties, and either the digest of its value (an HMAC under the
// journal key) or, for a secret whose value is a private key, the public
// key. It never holds a value.
type Entry struct {
	Name    string // lower case
	Version string
	Created time.Time // whole seconds, UTC
	Updated time.Time // whole seconds, UTC
	Enabled bool
	// Tags are the version's own tags.
	Tags map[string]string
	// Digest is HMAC-SHA256 of the value under the journal key version
	// KeyVersion (base64url, no padding); "" when Public is set.
	Digest     string
	KeyVersion string
	// Public is the public part of a private-key value ([Options.Public]),
	// base64url; "" otherwise.
	Public string
}

// same reports whether e and o say the same of one version.
func (e Entry) same(o Entry) bool {
	return e.Version == o.Version && e.Updated.Equal(o.Updated) && e.Enabled == o.Enabled &&
		e.Digest == o.Digest && e.KeyVersion == o.KeyVersion && e.Public == o.Public && maps.Equal(e.Tags, o.Tags)
}

// Tags of a record, besides the version's own tags. Versions' own tags
// never start with the prefix.
const (
	tagPrefix  = "j-"
	tagName    = "j-s"
	tagVersion = "j-v"
	tagCreated = "j-c"
	tagUpdated = "j-u"
	tagEnabled = "j-e"
	tagDigest  = "j-h"
	tagKey     = "j-k"
	tagPublic  = "j-p" // j-p0, j-p1, ...: the public key in pieces
	maxPublic  = 3     // pieces
)

// errRecord: a record that is not one.
var errRecord = errors.New("journal: malformed record")

// recordTags encodes e as a record's tags.
func recordTags(e Entry) (map[string]string, error) {
	t := make(map[string]string, len(e.Tags)+8)
	for k, v := range e.Tags {
		if strings.HasPrefix(k, tagPrefix) {
			return nil, fmt.Errorf("%w: %s's tag %q uses the journal's prefix", errRecord, e.Name, k)
		}
		t[k] = v
	}
	t[tagName], t[tagVersion] = e.Name, e.Version
	t[tagCreated], t[tagUpdated] = unix(e.Created), unix(e.Updated)
	t[tagEnabled] = "0"
	if e.Enabled {
		t[tagEnabled] = "1"
	}
	if e.Public != "" {
		for i, p := 0, e.Public; p != ""; i++ {
			if i == maxPublic {
				return nil, fmt.Errorf("%w: %s's public key is too long", errRecord, e.Name)
			}
			n := min(len(p), secretstore.MaxTagValueLen)
			t[tagPublic+strconv.Itoa(i)], p = p[:n], p[n:]
		}
	} else if e.Digest != "" {
		t[tagDigest], t[tagKey] = e.Digest, e.KeyVersion
	}
	if len(t) > secretstore.MaxTags {
		return nil, fmt.Errorf("%w: %s's record needs %d tags, more than %d", errRecord, e.Name, len(t), secretstore.MaxTags)
	}
	return t, nil
}

// parseRecord decodes a record's tags.
func parseRecord(tags map[string]string) (Entry, error) {
	e := Entry{Name: tags[tagName], Version: tags[tagVersion], Tags: map[string]string{}}
	var err1, err2 error
	e.Created, err1 = parseUnix(tags[tagCreated])
	e.Updated, err2 = parseUnix(tags[tagUpdated])
	switch tags[tagEnabled] {
	case "1":
		e.Enabled = true
	case "0":
	default:
		return Entry{}, errRecord
	}
	if err1 != nil || err2 != nil || e.Name != strings.ToLower(e.Name) || e.Name == "" || e.Version == "" {
		return Entry{}, errRecord
	}
	var pub strings.Builder
	for i := range maxPublic {
		pub.WriteString(tags[tagPublic+strconv.Itoa(i)])
	}
	e.Public = pub.String()
	e.Digest, e.KeyVersion = tags[tagDigest], tags[tagKey]
	// An enabled version carries a digest or a public key, never both; a
	// disabled one may carry neither (no version of it counts).
	if (e.Public != "" && e.Digest != "") || (e.Enabled && e.Public == "" && e.Digest == "") ||
		(e.Digest != "" && (len(e.Digest) != digestLen || e.KeyVersion == "")) {
		return Entry{}, errRecord
	}
	for k, v := range tags {
		if !strings.HasPrefix(k, tagPrefix) {
			e.Tags[k] = v
		}
	}
	return e, nil
}

func unix(t time.Time) string { return strconv.FormatInt(t.Unix(), 10) }

func parseUnix(s string) (time.Time, error) {
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 || strconv.FormatInt(n, 10) != s {
		return time.Time{}, errRecord
	}
	return time.Unix(n, 0).UTC(), nil
}

// digestLen is the length of a Digest: 32 bytes in base64url.
var digestLen = base64.RawURLEncoding.EncodedLen(sha256.Size)

// Digest returns the digest of value under key: HMAC-SHA256, base64url.
// Validators compare a presented key's digest with the entries'.
func Digest(key []byte, value string) string {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(value))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// entryOfProps is what p says of its version, without its value: the
// entry of a disabled version, which no value of counts.
func entryOfProps(p secretstore.Properties) Entry {
	e := Entry{
		Name: strings.ToLower(p.Name), Version: p.Version,
		Created: driver.WholeSecond(p.Created), Updated: driver.WholeSecond(p.Updated),
		Enabled: p.Enabled, Tags: maps.Clone(p.Tags),
	}
	if e.Tags == nil {
		e.Tags = map[string]string{}
	}
	return e
}

// entryOf is the entry of a version whose value is value: its digest under
// key, or its public key for a private-key secret.
func (j *Journal) entryOf(p secretstore.Properties, value string, key journalKey) Entry {
	e := entryOfProps(p)
	if pub, ok := j.public(e.Name, value); ok {
		e.Public = pub
	} else {
		e.Digest, e.KeyVersion = Digest(key.value, value), key.version
	}
	return e
}

// latestCreated is the latest creation second of the versions listed.
func latestCreated(props []secretstore.Properties) time.Time {
	var latest time.Time
	for _, p := range props {
		latest = maxTime(latest, driver.WholeSecond(p.Created))
	}
	return latest
}

// public is Options.Public, if it applies to name.
func (j *Journal) public(name, value string) (string, bool) {
	if j.opts.Public == nil || !j.opts.Private(name) {
		return "", false
	}
	return j.opts.Public(value)
}

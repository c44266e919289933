package azfunc

import (
	"bytes"
	"encoding/json"
	"fmt"
)

// Key Vault event types for secrets, as in [EventGridEvent.EventType].
const (
	SecretNewVersionCreated = "Microsoft.KeyVault.SecretNewVersionCreated"
	SecretNearExpiry        = "Microsoft.KeyVault.SecretNearExpiry"
	SecretExpired           = "Microsoft.KeyVault.SecretExpired"
)

// EventGridEvent is one event in the Event Grid schema, the value of an
// eventGridTrigger binding. Names match case-insensitively, so PascalCase
// input decodes too.
type EventGridEvent struct {
	ID        string `json:"id"`
	Topic     string `json:"topic"`
	Subject   string `json:"subject"`
	EventType string `json:"eventType"`
	EventTime Time   `json:"eventTime"`
	// Data is the event's payload, raw; decode it with
	// [EventGridEvent.DecodeData].
	Data            json.RawMessage `json:"data"`
	DataVersion     string          `json:"dataVersion"`
	MetadataVersion string          `json:"metadataVersion"`
}

// DecodeData decodes the event's data into v, which must be a non-nil
// pointer, undoing extra JSON-string encoding as [InvokeRequest.Bind] does.
//
// # Errors
//
// It returns an error wrapping [ErrNoBinding] if the event has no data
// (absent or null),
// and one wrapping [ErrMalformed] if the data does not decode into v.
func (e EventGridEvent) DecodeData(v any) error {
	if d := bytes.TrimSpace(e.Data); len(d) == 0 || string(d) == "null" {
		return fmt.Errorf("%w: event has no data", ErrNoBinding)
	}
	return decodeValue(e.Data, v)
}

// KeyVaultEventData is the data of a Key Vault event. Key Vault writes
// PascalCase names (Id, VaultName, NBF) and one schema revision camelCase;
// both decode.
type KeyVaultEventData struct {
	// ID is the object's versioned URL, e.g.
	// https://<vault>.vault.azure.net/secrets/<name>/<version>.
	ID         string `json:"Id"`
	VaultName  string `json:"VaultName"`
	ObjectType string `json:"ObjectType"`
	ObjectName string `json:"ObjectName"`
	Version    string `json:"Version"`
	// NBF and EXP are zero when the version has no not-before or expiry.
	NBF UnixTime `json:"NBF"`
	EXP UnixTime `json:"EXP"`
}

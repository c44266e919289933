// Package signingkey keeps the keys that sign modelauth's tokens: versions
// of the signing-key secret in the secret store, each tagged with its kid
// (the key's RFC 7638 thumbprint), its algorithm and when it signs from
// (activated).
//
// Which key signs, and which keys the JWKS publishes, follows from those
// versions and the time alone ([Plan]), so every instance agrees without
// locks and concurrent rotations cannot undo each other:
//
//   - a rotation writes the next key PublishAhead (the JWKS max-age, the
//     key-cache TTL and the clock skew) before it signs, so every gateway and instance knows it
//     before the first token it signs;
//   - the signer is the key with the latest activation that has come;
//   - a key whose successor took over stays published for Retention (the
//     longest token lifetime plus leeway), so its tokens verify until they
//     expire;
//   - revoke disables the signer's version, which removes it from the JWKS
//     and from verification (on other instances within one TTL), and writes
//     a key that signs at once.
//
// # Errors
//
// Store failures are returned wrapped (see secretstore.Code); [ErrUnknownKey]
// for a kid that is not published; [ErrKeyFormat] for a stored version this
// package cannot read. No error carries key material.
package signingkey

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
//     journal's bound and the clock skew) before it signs, so every gateway and instance knows it
//     before the first token it signs;
//   - the signer is the key with the latest activation that has come;
//   - a key whose successor took over stays published for Retention (the
//     longest token lifetime plus leeway), so its tokens verify until they
//     expire;
//   - revoke disables the signer's version, which removes it from the JWKS
//     and from verification (on this instance at once, on the others
//     within the journal's bound: two KEY_CACHE_TTL slots), and writes a
//     key that signs at once.
//
// # Reads
//
// The keys are known from the change journal (package journal): each
// version's record carries its tags and its public key ([PublicOf]), so
// verification, the JWKS and the timeline read nothing per key, and no
// private key. An unknown kid makes the journal list its open slot, at
// most once per RefreshMinInterval for the instance. Only signing reads a
// private key: the signer's version, once, kept in memory while it is
// published. Decisions that write (rotate, revoke, the first key) list the
// store's versions instead of trusting the journal: the writer's cost,
// on the timer, an administrator's call or the first token.
//
// # Errors
//
// Store failures are returned wrapped (see secretstore.Code); [ErrUnknownKey]
// for a kid that is not published; [ErrKeyFormat] for a stored version this
// package cannot read. A version whose recorded public key does not fit its
// tags (algorithm, kid) is not used, and logged as signing_key_unusable.
// No error or log carries key material.
package signingkey

// Package rotation writes a key-mode service's keys: it rotates them as
// docs/design.md section 5 says (alternating dual keys, staged, crash-safe,
// safe without locks), replaces one at once for regen_key, and creates
// them on first need. It is the only package that writes a service's
// active copy, svc-<service>-active.
//
// # The staged protocol
//
// A rotation of a service, [Rotator.RotateIfDue] or [Rotator.RotateNow]:
//
//  1. resume: read the state (every version's tags of both key secrets)
//     and repair the active copy if a crash left it behind the active key;
//     a staged version that is the newest of the inactive key's secret is
//     finished (same rotation id, same value) instead of starting another;
//  2. stage: otherwise, if due (see [Due]) or asked for now, write a new
//     value as the newest version of the inactive secret (state=staged,
//     rotation=<id>); a failed write is not retried: the state is read
//     again and the run starts over;
//  3. apply: make the value take effect at the service's [Target]: for
//     the app's own validators, wait until one key-cache TTL has passed
//     since the staging, so that every instance knows the value;
//  4. test: check the value with the target (the validators' own code);
//  5. finish: only if the newest version of that secret still carries this
//     rotation's id and that secret is still the inactive one, tag it
//     state=current, activated=<unix>, exp=due+30 days, then write it to
//     the active copy.
//
// The active key is the one whose current version (the newest not
// staged) has the larger activated time; keys never rotated have
// none, and a tie goes to the Primary. The period of keys never rotated
// counts from their creation. Validators accept the newest version of each
// key secret and the active copy, so a key told to clients keeps working
// until the next rotation is due.
//
// # Versions without a listing order
//
// Key Vault lists versions in no promised order, and keeps times in whole
// seconds. So "newest" is never a list position: it is the version that
// reading the secret without a version returns ([Slot.NewestID]); a key's
// current version is that version unless it is staged, and otherwise the
// version not staged with the latest activated tag, then the latest
// Created ([Slot.Current]). Reading a key secret's state therefore costs a
// listing and one read.
//
// Every step logs one event (rotation_started, rotation_staged,
// rotation_tested, rotation_completed, rotation_superseded, rotation_failed
// with a reason), never a key.
package rotation

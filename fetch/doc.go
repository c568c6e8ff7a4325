// Package fetch is postie's retriever ("postie fetch"): it pulls mail from
// POP3 accounts into a Maildir, an mbox file, a command (MDA) or an LMTP
// server, and keeps track of what it already has by UIDL, like fetchmail,
// getmail and mpop.
//
// It owns the accounts' configuration (a TOML file of [[account]] tables,
// see Load and examples/fetch.toml), the per-account state, the policies
// (delete after download, keep, delete N days after download, size
// limits, caps per run), the destinations, a daemon loop and a server
// probe. The POP3 protocol is pop3client's.
//
// # Exactly once
//
// For each message a run does, in this order: RETR; write to the
// destination and make it durable (fsync); record the id as delivered in
// the state, durably; and only at the end of the session DELE the
// messages to delete, then QUIT. A run killed at any point therefore never
// deletes a message that is not delivered and recorded, and a server
// connection that dies before QUIT deletes nothing (RFC 1939 §6): the next
// run deletes what is recorded as delivered. The state is an append-only
// journal (fsynced) on a snapshot written atomically (see state.go for the
// format); it lives in the state directory, one per account, locked while
// a run uses it.
//
// Deliveries are made durable and recorded in batches (up to 64
// messages, 8 MiB or a second): the files of a batch are fsynced
// together in the background while the next ones are fetched, then
// renamed into new/, new/ is fsynced, and the batch is recorded with one
// fsync of the journal. Nothing is deleted before its batch is recorded.
// RETR commands are pipelined a few ahead when the server announces
// PIPELINING (RFC 2449), which changes none of this: RETR changes nothing
// on the server, and a message whose RETR was sent but which was not
// delivered is neither recorded nor deleted, so the next run fetches it.
//
// The exception is a server announcing EXPIRE 0 (RFC 2449 §6.7): its QUIT
// deletes every message the session retrieved, DELE or not. There a run
// ends the session with QUIT only if every message it retrieved (RETR,
// or a TOP that sent all of it) is delivered and recorded; otherwise (the
// destination refused or failed, the run was stopped) it closes the
// connection without QUIT, and the server, in no UPDATE state, deletes
// nothing (RFC 1939 §6). That also drops the session's DELEs, but the
// messages delivered are recorded, and the run then deletes them in a
// second session that retrieves nothing (cleanup.go): UIDL, DELE of the
// messages recorded as delivered, QUIT. A run stopped or killed before
// that leaves them to the next run, which does not fetch them again and
// deletes them, so each is still delivered once. RETR is not pipelined
// there, so that a run never retrieves more than it reaches. Without
// EXPIRE 0 a run always ends with QUIT: RETR deletes nothing, and only
// what is recorded was marked with DELE. A message the destination
// refuses for good is retrieved again by each run (with a warning), as
// without EXPIRE 0, and stays on the server until the destination takes
// it or it is removed there; the others do not stay with it.
//
// A run killed between the write and the record leaves a delivered but
// unrecorded message. Maildir names carry a hash of the account and the
// id, and the next run looks for them before fetching; mbox appends are
// recorded as pending with their offset first, and the next run finds the
// message there whole (recorded), partly (removed and appended again) or
// not at all. Maildir and mbox deliveries are thus exactly once. An MDA or
// an LMTP server cannot be asked: a delivery interrupted there is made
// again (at least once, with a warning), never lost.
//
// Beside its state, an account has in the state directory NAME.status, the
// result of its last run (Status, for postie fetch status), and with the
// built-in OAuth sign-in NAME.oauth, its tokens (oauth.go); both are
// written whole, mode 0600.
//
// Servers without UIDL get a fallback id: a hash of the Message-ID, Date,
// From and Subject fields (from TOP n 0) and the size.
package fetch

// Package intake owns mail intake: the LMTP server (RFC 2033) an MTA
// delivers into, the optional SMTP server for local domains, and the core
// that both share with `postie deliver` (the local delivery agent):
// recipient addresses to users, trace header fields, quotas and the
// classification of failures into replies and exit codes. It writes
// through store.Store and never holds the maildrop lock, so a delivery
// during a POP3 session succeeds and shows up in the next session.
//
// # Durability
//
// A delivery is acknowledged (LMTP/SMTP 250, deliver exit 0) only once
// store.Store.Deliver has returned, that is once the message and its
// directory entry are on disk. Every failure gets a reply: permanent ones
// (unknown user, over quota, too big) a 5xx, everything else (disk full,
// I/O errors, shutdown) a 4xx, so the MTA keeps the message and retries.
//
// # What a delivered message looks like
//
// The message is stored as received, byte for byte, after three header
// fields the delivery prepends (RFC 5321 §4.4, as LDAs do):
//
//	Return-Path: <sender@example.org>
//	Delivered-To: alice+lists@example.org
//	Received: from mx.example.org ([127.0.0.1])
//		by mail.example.org (postie) with LMTP id 4AB3C2D1E0F9A8B7
//		for <alice+lists@example.org>; Tue, 14 Jan 2025 10:00:00 +0000
//
// Their line ends are those of the message's first line (CRLF for LMTP
// and SMTP, usually LF for deliver).
package intake

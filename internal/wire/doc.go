// Package wire is postie's POP3 framing layer, shared by the server and the
// client and free of any protocol state: a bounded command-line reader, the
// command tokenizer, the dot-stuffing message writer (which also turns stored
// LF or CRLF text into the CRLF wire form and counts its size), the strict
// CRLF.CRLF multi-line reader, and the TOP line limiter. It imports only the
// standard library.
package wire

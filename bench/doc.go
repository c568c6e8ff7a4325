// Package bench is the load generator behind `postie bench`: it runs a
// scenario (sessions, retr, bigretr, idle, bigbox; see Scenarios and Run)
// against any POP3 server with pop3client, plain or over TLS, or LMTP
// deliveries (lmtp) into any LMTP server, and reports throughput, latency
// and, for a server on this machine, its CPU time and memory read from
// /proc (Result, Report).
package bench

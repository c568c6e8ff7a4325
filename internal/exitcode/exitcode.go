// Package exitcode is the one table of the exit codes postie's commands
// end with, from sysexits(3) where one fits: an MTA running `postie
// deliver` (Postfix's local(8) and pipe(8)) bounces on 64, 65, 67, 69 and
// 73 and retries on 75; `postie fetch` reports the most severe failure of
// its accounts. It imports nothing.
package exitcode

const (
	OK          = 0
	Failure     = 1  // none of the below
	Usage       = 64 // EX_USAGE: bad command line
	DataErr     = 65 // EX_DATAERR: bad input (a user name or password)
	NoInput     = 66 // EX_NOINPUT: an input file is missing or unreadable
	NoUser      = 67 // EX_NOUSER: no such user
	Unavailable = 69 // EX_UNAVAILABLE: refused for good (message too big)
	CantCreat   = 73 // EX_CANTCREAT: cannot create the output (over quota)
	TempFail    = 75 // EX_TEMPFAIL: try again later
	Protocol    = 76 // EX_PROTOCOL: the peer broke the protocol (TLS failed)
	NoPerm      = 77 // EX_NOPERM: permission denied (credentials refused)
	Config      = 78 // EX_CONFIG: configuration error
)

package pop3server

// SetBigMsgWriterSize makes the msgWriters of big messages read in
// pieces of in octets (and buffer four times that), for benchmarks, and
// returns the function that restores the default.
func SetBigMsgWriterSize(in int) (restore func()) {
	set := func(in int) {
		made := false
		bigMsgWriters.New = func() any { made = true; return newMsgWriter(in) }
		// Empty the pool of writers of the other size.
		for !made {
			bigMsgWriters.Get()
		}
	}
	set(in)
	return func() { set(64 << 10) }
}

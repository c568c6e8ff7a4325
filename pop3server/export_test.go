package pop3server

// SetRangePerDot sets the fewest octets per dot line with which a message
// goes from its file in pieces, and returns the function that restores it.
func SetRangePerDot(n int64) (restore func()) {
	old := rangePerDot
	rangePerDot = n
	return func() { rangePerDot = old }
}

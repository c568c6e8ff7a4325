package exitcode

import "testing"

// The codes are a contract with MTAs and scripts: sysexits(3)'s numbers.
func TestSysexits(t *testing.T) {
	for _, tc := range []struct {
		name      string
		got, want int
	}{
		{"OK", OK, 0}, {"Failure", Failure, 1}, {"Usage", Usage, 64}, {"DataErr", DataErr, 65}, {"NoInput", NoInput, 66},
		{"NoUser", NoUser, 67}, {"Unavailable", Unavailable, 69}, {"CantCreat", CantCreat, 73},
		{"TempFail", TempFail, 75}, {"Protocol", Protocol, 76}, {"NoPerm", NoPerm, 77}, {"Config", Config, 78},
	} {
		if tc.got != tc.want {
			t.Errorf("%s = %d, want %d", tc.name, tc.got, tc.want)
		}
	}
}

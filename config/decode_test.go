package config

import "testing"

// Decode is how both config files (postie's and fetch's) are read: the
// errors name the file, the line and the key, after the caller's prefix.
func TestDecode(t *testing.T) {
	type account struct {
		Name    string `toml:"name"`
		MaxSize Size   `toml:"max_size"`
	}
	type file struct {
		Interval Duration   `toml:"interval"`
		Accounts []*account `toml:"account"`
	}
	var ok file
	if err := Decode("fetch config", "f.toml", []byte("interval = \"5m\"\n[[account]]\nname = \"a\"\nmax_size = \"1M\"\n"), &ok); err != nil ||
		ok.Interval.Std().String() != "5m0s" || len(ok.Accounts) != 1 || ok.Accounts[0].MaxSize != 1<<20 {
		t.Errorf("Decode: %+v, %v", ok, err)
	}
	for _, tc := range []struct{ text, want string }{
		{"colour = 1\n", "fetch config: f.toml: unknown key: colour"},
		{"[[account]]\nkeep_it = true\n[extra]\na = 1\nb = 2\n", "fetch config: f.toml: unknown keys: account.keep_it, extra"},
		{"interval = \"soon\"\n", `fetch config: f.toml:1: interval: "soon" is not a duration such as "30s", "10m" or "1h"`},
		{"\n[[account]]\nmax_size = \"big\"\n", `fetch config: f.toml:3: account.max_size: "big" is not a size such as 1048576, "512K" or "50M"`},
		{"interval = \n", "fetch config: f.toml:1: interval: expected a value after =, found the end of the line"},
		{"[[account]]\nname = 5\n", "fetch config: f.toml:2: account.name: expected a string in quotes, found an integer"},
		{"account = 5\n", "fetch config: f.toml:1: account: expected an array of tables ([[account]]), found an integer"},
	} {
		var f file
		if err := Decode("fetch config", "f.toml", []byte(tc.text), &f); err == nil || err.Error() != tc.want {
			t.Errorf("%q:\n got %v\nwant %s", tc.text, err, tc.want)
		}
	}
}

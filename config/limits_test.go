package config

import (
	"testing"
	"time"
)

func TestLoginTimeout(t *testing.T) {
	if got := Default().POP3.LoginTimeout.Std(); got != 3*time.Minute {
		t.Errorf("default login_timeout %v, want 3m", got)
	}
	c, _, err := load(t, "[pop3]\nlogin_timeout = \"90s\"\n")
	if err != nil {
		t.Fatal(err)
	}
	if got := c.POP3.LoginTimeout.Std(); got != 90*time.Second {
		t.Errorf("login_timeout %v, want 90s", got)
	}
	_, _, err = load(t, "[pop3]\nlogin_timeout = \"0s\"\n")
	wantErr(t, err, "pop3.login_timeout", "more than 0s")
}

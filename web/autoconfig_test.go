package web_test

import (
	"encoding/xml"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/postie-mail/postie/internal/testenv/pop3test"
	"github.com/postie-mail/postie/web"
)

// The published formats, written out here from their documentation
// rather than taken from the package, so that a change of the package's
// own types cannot hide a change of the documents.

// Thunderbird: https://wiki.mozilla.org/Thunderbird:Autoconfiguration:ConfigFileFormat
type clientConfig struct {
	XMLName  xml.Name `xml:"clientConfig"`
	Version  string   `xml:"version,attr"`
	Provider struct {
		ID               string   `xml:"id,attr"`
		Domain           []string `xml:"domain"`
		DisplayName      string   `xml:"displayName"`
		DisplayShortName string   `xml:"displayShortName"`
		Incoming         []struct {
			Type           string `xml:"type,attr"`
			Hostname       string `xml:"hostname"`
			Port           int    `xml:"port"`
			SocketType     string `xml:"socketType"`
			Username       string `xml:"username"`
			Authentication string `xml:"authentication"`
			POP3           *struct {
				LeaveMessagesOnServer       string `xml:"leaveMessagesOnServer"`
				DownloadOnBiff              string `xml:"downloadOnBiff"`
				DaysToLeaveMessagesOnServer string `xml:"daysToLeaveMessagesOnServer"`
				CheckInterval               *struct {
					Minutes string `xml:"minutes,attr"`
				} `xml:"checkInterval"`
			} `xml:"pop3"`
		} `xml:"incomingServer"`
	} `xml:"emailProvider"`
}

// Outlook's POX autodiscover response ([MS-OXDSCLI] 2.2.4).
type autodiscoverResponse struct {
	XMLName  xml.Name `xml:"http://schemas.microsoft.com/exchange/autodiscover/responseschema/2006 Autodiscover"`
	Response struct {
		XMLName xml.Name `xml:"http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a Response"`
		User    struct {
			DisplayName string `xml:"DisplayName"`
		} `xml:"User"`
		Account struct {
			AccountType string `xml:"AccountType"`
			Action      string `xml:"Action"`
			Protocol    []struct {
				Type           string `xml:"Type"`
				Server         string `xml:"Server"`
				Port           int    `xml:"Port"`
				DomainRequired string `xml:"DomainRequired"`
				LoginName      string `xml:"LoginName"`
				SPA            string `xml:"SPA"`
				SSL            string `xml:"SSL"`
				Encryption     string `xml:"Encryption"`
				AuthRequired   string `xml:"AuthRequired"`
			} `xml:"Protocol"`
		} `xml:"Account"`
		Error *struct {
			ErrorCode int `xml:"ErrorCode"`
		} `xml:"Error"`
	} `xml:"Response"`
}

var mail = web.MailServer{
	Host:       "mail.example.org",
	POP3S:      []int{995, 1995},
	STLS:       []int{110},
	Domains:    []string{"example.org", "example.net."},
	ExpireSet:  true,
	ExpireDays: 30,
	LoginDelay: 90 * time.Second,
}

// start serves a Handler of opts (Logins from a real POP3 engine when
// nil) over HTTPS on a loopback port.
func start(t *testing.T, opts web.Options) (*httptest.Server, *pop3test.Server) {
	t.Helper()
	var pop *pop3test.Server
	if opts.Logins == nil {
		pop = pop3test.Start(t, pop3test.Options{})
		opts.Logins = pop.Server
	}
	h, err := web.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewTLSServer(h)
	t.Cleanup(srv.Close)
	return srv, pop
}

func get(t *testing.T, c *http.Client, u string) (*http.Response, string) {
	t.Helper()
	resp, err := c.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

func TestThunderbirdAutoconfig(t *testing.T) {
	for _, tc := range []struct {
		name      string
		mail      web.MailServer
		leave     string
		days      string
		minutes   string
		noPOP3S   bool
		wantPorts []int
	}{
		{name: "expire 30 days, login delay", mail: mail, leave: "true", days: "30", minutes: "2", wantPorts: []int{995, 1995, 110}},
		{name: "expire 0", mail: web.MailServer{Host: "pop.example.org", POP3S: []int{995}, Domains: []string{"example.org"}, ExpireSet: true}, leave: "false", wantPorts: []int{995}},
		{name: "no expire, STLS only", mail: web.MailServer{Host: "pop.example.org", STLS: []int{110}, Domains: []string{"example.org"}}, leave: "false", wantPorts: []int{110}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv, _ := start(t, web.Options{Mail: tc.mail})
			for _, path := range []string{
				"/mail/config-v1.1.xml?emailaddress=" + url.QueryEscape("Bob.Smith@Example.ORG"),
				"/.well-known/autoconfig/mail/config-v1.1.xml?emailaddress=bob%40example.org",
				"/.well-known/autoconfig/mail/config-v1.1.xml",
			} {
				resp, body := get(t, srv.Client(), srv.URL+path)
				if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/xml; charset=utf-8" {
					t.Fatalf("%s: %s %q\n%s", path, resp.Status, resp.Header.Get("Content-Type"), body)
				}
				var cc clientConfig
				if err := xml.Unmarshal([]byte(body), &cc); err != nil {
					t.Fatalf("%s: %v\n%s", path, err, body)
				}
				p := cc.Provider
				if cc.Version != "1.1" || p.ID != "example.org" || !reflect.DeepEqual(p.Domain, []string{"example.org"}) || p.DisplayShortName != "example.org" {
					t.Errorf("%s: provider %+v", path, cc)
				}
				var ports []int
				for i, in := range p.Incoming {
					ports = append(ports, in.Port)
					wantSocket := "SSL"
					if i >= len(tc.mail.POP3S) {
						wantSocket = "STARTTLS"
					}
					if in.Type != "pop3" || in.Hostname != tc.mail.Host || in.SocketType != wantSocket ||
						in.Username != "%EMAILLOCALPART%" || in.Authentication != "password-cleartext" {
						t.Errorf("%s: server %d: %+v", path, i, in)
					}
					if in.POP3 == nil {
						t.Fatalf("%s: server %d has no pop3 element", path, i)
					}
					minutes := ""
					if in.POP3.CheckInterval != nil {
						minutes = in.POP3.CheckInterval.Minutes
					}
					if in.POP3.LeaveMessagesOnServer != tc.leave || in.POP3.DownloadOnBiff != "true" ||
						in.POP3.DaysToLeaveMessagesOnServer != tc.days || minutes != tc.minutes {
						t.Errorf("%s: pop3 hints %+v (check interval %q)", path, *in.POP3, minutes)
					}
				}
				if !reflect.DeepEqual(ports, tc.wantPorts) {
					t.Errorf("%s: ports %v, want %v (POP3S first)", path, ports, tc.wantPorts)
				}
			}
		})
	}
}

// Addresses of other domains, and things that are not addresses, get no
// document.
func TestAutoconfigRefusesOtherDomains(t *testing.T) {
	srv, _ := start(t, web.Options{Mail: mail})
	for _, addr := range []string{"bob@example.com", "bob", "@example.org", "bob@", "a<b@example.org", "bob@exa mple.org", "bob@[127.0.0.1]"} {
		resp, _ := get(t, srv.Client(), srv.URL+"/mail/config-v1.1.xml?emailaddress="+url.QueryEscape(addr))
		if resp.StatusCode != 404 {
			t.Errorf("%q: %s, want 404", addr, resp.Status)
		}
		resp, _ = get(t, srv.Client(), srv.URL+"/mobileconfig?emailaddress="+url.QueryEscape(addr))
		if resp.StatusCode != 404 {
			t.Errorf("mobileconfig %q: %s, want 404", addr, resp.Status)
		}
	}
}

func autodiscoverRequest(addr string) string {
	var b strings.Builder
	b.WriteString(`<?xml version="1.0" encoding="utf-8"?>
<Autodiscover xmlns="http://schemas.microsoft.com/exchange/autodiscover/outlook/requestschema/2006">
<Request><EMailAddress>`)
	xml.EscapeText(&b, []byte(addr))
	b.WriteString(`</EMailAddress>
<AcceptableResponseSchema>http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a</AcceptableResponseSchema>
</Request></Autodiscover>`)
	return b.String()
}

func post(t *testing.T, c *http.Client, u, body string) (*http.Response, string) {
	t.Helper()
	resp, err := c.Post(u, "text/xml", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

func TestAutodiscover(t *testing.T) {
	srv, _ := start(t, web.Options{Mail: mail})
	addr := "Bob.Smith+lists@Example.NET"
	resp, body := post(t, srv.Client(), srv.URL+"/autodiscover/autodiscover.xml", autodiscoverRequest(addr))
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/xml; charset=utf-8" {
		t.Fatalf("%s %q\n%s", resp.Status, resp.Header.Get("Content-Type"), body)
	}
	var ad autodiscoverResponse
	if err := xml.Unmarshal([]byte(body), &ad); err != nil {
		t.Fatalf("%v\n%s", err, body)
	}
	r := ad.Response
	if r.User.DisplayName != addr || r.Account.AccountType != "email" || r.Account.Action != "settings" || r.Error != nil {
		t.Errorf("response %+v", r)
	}
	type proto struct {
		Port       int
		Encryption string
	}
	var got []proto
	for _, p := range r.Account.Protocol {
		got = append(got, proto{p.Port, p.Encryption})
		if p.Type != "POP3" || p.Server != mail.Host || p.LoginName != "Bob.Smith+lists" || p.DomainRequired != "off" ||
			p.SPA != "off" || p.SSL != "on" || p.AuthRequired != "on" {
			t.Errorf("protocol %+v", p)
		}
	}
	if want := []proto{{995, "SSL"}, {1995, "SSL"}, {110, "TLS"}}; !reflect.DeepEqual(got, want) {
		t.Errorf("protocols %v, want %v", got, want)
	}

	// An address of another domain: Outlook's error response.
	resp, body = post(t, srv.Client(), srv.URL+"/autodiscover/autodiscover.xml", autodiscoverRequest("bob@example.com"))
	ad = autodiscoverResponse{}
	if err := xml.Unmarshal([]byte(body), &ad); err != nil || resp.StatusCode != 200 || ad.Response.Error == nil || ad.Response.Error.ErrorCode != 600 || len(ad.Response.Account.Protocol) != 0 {
		t.Errorf("other domain: %s %v\n%s", resp.Status, err, body)
	}
}

// Hostile autodiscover requests: entity expansion, external entities, a
// body over the bound, another schema, not XML.
func TestAutodiscoverHostile(t *testing.T) {
	srv, _ := start(t, web.Options{Mail: mail})
	laughs := `<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;"><!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]>
<Autodiscover xmlns="http://schemas.microsoft.com/exchange/autodiscover/outlook/requestschema/2006"><Request><EMailAddress>&lol3;@example.org</EMailAddress></Request></Autodiscover>`
	external := `<?xml version="1.0"?>
<!DOCTYPE a [<!ENTITY x SYSTEM "file:///etc/passwd">]>
<Autodiscover xmlns="http://schemas.microsoft.com/exchange/autodiscover/outlook/requestschema/2006"><Request><EMailAddress>&x;</EMailAddress></Request></Autodiscover>`
	for _, tc := range []struct {
		name, body string
		status     int
	}{
		{"billion laughs", laughs, 400},
		{"external entity", external, 400},
		{"too large", autodiscoverRequest(strings.Repeat("a", 9000) + "@example.org"), 413},
		{"other schema", strings.ReplaceAll(autodiscoverRequest("bob@example.org"), "outlook/requestschema", "mobilesync/requestschema"), 400},
		{"not XML", "EMailAddress=bob@example.org", 400},
	} {
		resp, body := post(t, srv.Client(), srv.URL+"/autodiscover/autodiscover.xml", tc.body)
		if resp.StatusCode != tc.status {
			t.Errorf("%s: %s, want %d\n%s", tc.name, resp.Status, tc.status, body)
		}
		if strings.Contains(body, "lollol") || strings.Contains(body, "root:") {
			t.Errorf("%s: an entity was expanded:\n%s", tc.name, body)
		}
	}
	resp, _ := get(t, srv.Client(), srv.URL+"/autodiscover/autodiscover.xml")
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("GET: %s", resp.Status)
	}
}

// plist reads the top dict of an Apple property list into key → value,
// the values of the first dict of PayloadContent under "content.".
func plist(t *testing.T, doc string) map[string]string {
	t.Helper()
	dec := xml.NewDecoder(strings.NewReader(doc))
	out := map[string]string{}
	var key, prefix string
	depth := 0
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatalf("plist: %v\n%s", err, doc)
		}
		switch e := tok.(type) {
		case xml.StartElement:
			switch e.Name.Local {
			case "dict":
				depth++
				if depth == 2 {
					prefix = "content."
				}
			case "key", "string", "integer":
				var s string
				if err := dec.DecodeElement(&s, &e); err != nil {
					t.Fatal(err)
				}
				if e.Name.Local == "key" {
					key = s
				} else {
					out[prefix+key] = s
				}
			case "true", "false":
				out[prefix+key] = e.Name.Local
			}
		case xml.EndElement:
			if e.Name.Local == "dict" {
				depth--
				prefix = ""
			}
		}
	}
}

func TestMobileconfig(t *testing.T) {
	srv, _ := start(t, web.Options{Mail: mail})
	resp, body := get(t, srv.Client(), srv.URL+"/mobileconfig?emailaddress=bob%40example.org")
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/x-apple-aspen-config" ||
		resp.Header.Get("Content-Disposition") != `attachment; filename="bob.mobileconfig"` {
		t.Fatalf("%s %v\n%s", resp.Status, resp.Header, body)
	}
	if !strings.Contains(body, `<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">`) {
		t.Errorf("no plist doctype:\n%s", body)
	}
	p := plist(t, body)
	want := map[string]string{
		"content.EmailAccountType":                 "EmailTypePOP",
		"content.EmailAddress":                     "bob@example.org",
		"content.IncomingMailServerAuthentication": "EmailAuthPassword",
		"content.IncomingMailServerHostName":       mail.Host,
		"content.IncomingMailServerPortNumber":     strconv.Itoa(mail.POP3S[0]),
		"content.IncomingMailServerUseSSL":         "true",
		"content.IncomingMailServerUsername":       "bob",
		"content.PayloadType":                      "com.apple.mail.managed",
		"content.PayloadVersion":                   "1",
		"PayloadType":                              "Configuration",
		"PayloadVersion":                           "1",
	}
	for k, v := range want {
		if p[k] != v {
			t.Errorf("%s = %q, want %q", k, p[k], v)
		}
	}
	if p["PayloadUUID"] == "" || p["PayloadUUID"] == p["content.PayloadUUID"] || len(p["PayloadUUID"]) != 36 {
		t.Errorf("UUIDs %q and %q", p["PayloadUUID"], p["content.PayloadUUID"])
	}
	// The same address, the same profile (installing it again replaces).
	if _, again := get(t, srv.Client(), srv.URL+"/mobileconfig?emailaddress=bob%40example.org"); again != body {
		t.Error("a second download differs")
	}
}

package web

import (
	"bytes"
	"crypto/sha256"
	"encoding/xml"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
)

// Usernames: postie's users are named by the local part of their address
// (intake delivers local@domain to user "local"), so every document tells
// clients to log in with the local part.

// splitAddress checks an e-mail address given to a document and returns
// its local part and domain; ok is false for something that is not an
// address of a domain served here.
func (h *Handler) splitAddress(addr string) (local, domain string, ok bool) {
	if len(addr) > 254 || strings.ContainsFunc(addr, func(r rune) bool { return r <= ' ' || r == 0x7f || strings.ContainsRune(`"<>&'\`, r) }) {
		return "", "", false
	}
	i := strings.LastIndexByte(addr, '@')
	if i <= 0 || i == len(addr)-1 {
		return "", "", false
	}
	local, domain = addr[:i], strings.ToLower(strings.TrimSuffix(addr[i+1:], "."))
	if strings.Contains(local, "@") || !h.servesDomain(domain) {
		return "", "", false
	}
	return local, domain, true
}

func (h *Handler) servesDomain(domain string) bool {
	if !validDomain(domain) {
		return false
	}
	if len(h.opts.Mail.Domains) == 0 {
		return true
	}
	for _, d := range h.opts.Mail.Domains {
		if strings.EqualFold(strings.TrimSuffix(d, "."), domain) {
			return true
		}
	}
	return false
}

// validDomain accepts DNS names: letters, digits, '-' and '.', not an
// address literal.
func validDomain(d string) bool {
	if d == "" || len(d) > 253 || strings.HasPrefix(d, ".") || strings.Contains(d, "..") {
		return false
	}
	letter := false
	for _, r := range d {
		switch {
		case r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r == '-':
			letter = true
		case r >= '0' && r <= '9' || r == '.':
		default:
			return false
		}
	}
	return letter
}

// server is one way to reach the POP3 service, in the order offered.
type server struct {
	port     int
	implicit bool // POP3S; else STLS
}

func (h *Handler) servers() []server {
	var out []server
	for _, p := range h.opts.Mail.POP3S {
		out = append(out, server{p, true})
	}
	for _, p := range h.opts.Mail.STLS {
		out = append(out, server{p, false})
	}
	return out
}

// Thunderbird's autoconfig format (clientConfig version 1.1).
type tbConfig struct {
	XMLName  xml.Name   `xml:"clientConfig"`
	Version  string     `xml:"version,attr"`
	Provider tbProvider `xml:"emailProvider"`
}

type tbProvider struct {
	ID               string     `xml:"id,attr"`
	Domains          []string   `xml:"domain"`
	DisplayName      string     `xml:"displayName"`
	DisplayShortName string     `xml:"displayShortName"`
	Incoming         []tbServer `xml:"incomingServer"`
}

type tbServer struct {
	Type           string `xml:"type,attr"`
	Hostname       string `xml:"hostname"`
	Port           int    `xml:"port"`
	SocketType     string `xml:"socketType"`
	Username       string `xml:"username"`
	Authentication string `xml:"authentication"`
	POP3           tbPOP3 `xml:"pop3"`
}

type tbPOP3 struct {
	LeaveMessagesOnServer       bool             `xml:"leaveMessagesOnServer"`
	DownloadOnBiff              bool             `xml:"downloadOnBiff"`
	DaysToLeaveMessagesOnServer int              `xml:"daysToLeaveMessagesOnServer,omitempty"`
	CheckInterval               *tbCheckInterval `xml:"checkInterval"`
}

type tbCheckInterval struct {
	Minutes int `xml:"minutes,attr"`
}

// pop3Hints turns the server's EXPIRE and LOGIN-DELAY into Thunderbird's
// pop3 hints: with EXPIRE n > 0 messages stay on the server and the
// server removes them after n days; with EXPIRE 0 (the server removes
// what was retrieved), unset or NEVER, the client removes what it
// downloaded (POP3's usual way; a quota would fill up otherwise).
// LOGIN-DELAY becomes the check interval, in whole minutes rounded up.
func (h *Handler) pop3Hints() tbPOP3 {
	m := h.opts.Mail
	p := tbPOP3{DownloadOnBiff: true}
	if m.ExpireSet && m.ExpireDays > 0 {
		p.LeaveMessagesOnServer = true
		p.DaysToLeaveMessagesOnServer = m.ExpireDays
	}
	if m.LoginDelay > 0 {
		p.CheckInterval = &tbCheckInterval{Minutes: int((m.LoginDelay + 59e9) / 60e9)}
	}
	return p
}

// thunderbird serves the autoconfig document (at both of the paths
// Thunderbird asks: the well-known one on the domain's host, and the one
// on autoconfig.<domain>), for the domain of ?emailaddress= or, without
// one, for the Host the client asked.
func (h *Handler) thunderbird(w http.ResponseWriter, r *http.Request) {
	domain := ""
	if addr := r.URL.Query().Get("emailaddress"); addr != "" {
		var ok bool
		if _, domain, ok = h.splitAddress(addr); !ok {
			http.Error(w, "No configuration for this address.", http.StatusNotFound)
			return
		}
	} else {
		host := r.Host
		if hh, _, err := net.SplitHostPort(host); err == nil {
			host = hh
		}
		domain = strings.TrimPrefix(strings.ToLower(host), "autoconfig.")
		if !strings.Contains(domain, ".") || !h.servesDomain(domain) {
			domain = ""
			if len(h.opts.Mail.Domains) > 0 {
				domain = strings.ToLower(strings.TrimSuffix(h.opts.Mail.Domains[0], "."))
			}
		}
		if domain == "" {
			http.Error(w, "Ask with ?emailaddress=", http.StatusNotFound)
			return
		}
	}
	m := h.opts.Mail
	doc := tbConfig{Version: "1.1", Provider: tbProvider{
		ID:               domain,
		Domains:          []string{domain},
		DisplayName:      "Mail at " + domain,
		DisplayShortName: domain,
	}}
	for _, s := range h.servers() {
		st := "STARTTLS"
		if s.implicit {
			st = "SSL"
		}
		doc.Provider.Incoming = append(doc.Provider.Incoming, tbServer{
			Type: "pop3", Hostname: m.Host, Port: s.port, SocketType: st,
			Username: "%EMAILLOCALPART%", Authentication: "password-cleartext",
			POP3: h.pop3Hints(),
		})
	}
	writeXML(w, "application/xml; charset=utf-8", doc)
}

func writeXML(w http.ResponseWriter, ctype string, v any) {
	var b bytes.Buffer
	b.WriteString(xml.Header)
	enc := xml.NewEncoder(&b)
	enc.Indent("", "  ")
	if err := enc.Encode(v); err != nil {
		http.Error(w, "Internal error.", http.StatusInternalServerError)
		return
	}
	b.WriteByte('\n')
	w.Header().Set("Content-Type", ctype)
	w.Header().Set("Cache-Control", "no-cache")
	w.Write(b.Bytes())
}

// Outlook's POX autodiscover (the "outlook" schemas of 2006).
const (
	adRequestNS   = "http://schemas.microsoft.com/exchange/autodiscover/outlook/requestschema/2006"
	adResponseNS  = "http://schemas.microsoft.com/exchange/autodiscover/responseschema/2006"
	adOutlookNS   = "http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a"
	maxADRequest  = 8 << 10
	adContentType = "text/xml; charset=utf-8"
)

type adRequest struct {
	XMLName xml.Name `xml:"Autodiscover"`
	Request struct {
		EMailAddress             string `xml:"EMailAddress"`
		AcceptableResponseSchema string `xml:"AcceptableResponseSchema"`
	} `xml:"Request"`
}

type adResponse struct {
	XMLName  xml.Name `xml:"Autodiscover"`
	NS       string   `xml:"xmlns,attr"`
	Response adBody   `xml:"Response"`
}

type adBody struct {
	NS      string     `xml:"xmlns,attr"`
	User    *adUser    `xml:"User,omitempty"`
	Account *adAccount `xml:"Account,omitempty"`
	Error   *adError   `xml:"Error,omitempty"`
}

type adUser struct {
	DisplayName string `xml:"DisplayName"`
}

type adAccount struct {
	AccountType string       `xml:"AccountType"`
	Action      string       `xml:"Action"`
	Protocols   []adProtocol `xml:"Protocol"`
}

type adProtocol struct {
	Type           string `xml:"Type"`
	Server         string `xml:"Server"`
	Port           int    `xml:"Port"`
	DomainRequired string `xml:"DomainRequired"`
	LoginName      string `xml:"LoginName"`
	SPA            string `xml:"SPA"`
	SSL            string `xml:"SSL"`
	Encryption     string `xml:"Encryption"`
	AuthRequired   string `xml:"AuthRequired"`
}

type adError struct {
	Time      string `xml:"Time,attr"`
	ID        string `xml:"Id,attr"`
	ErrorCode int    `xml:"ErrorCode"`
	Message   string `xml:"Message"`
	DebugData string `xml:"DebugData"`
}

// autodiscover answers Outlook's POST. The request is read up to
// maxADRequest octets by encoding/xml, which expands no entities but the
// five predefined ones and reads no DTD: a "billion laughs" document is
// an error, not a memory bomb.
func (h *Handler) autodiscover(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxADRequest))
	if err != nil {
		http.Error(w, "Request too large.", http.StatusRequestEntityTooLarge)
		return
	}
	var req adRequest
	dec := xml.NewDecoder(bytes.NewReader(body))
	dec.Strict = true
	if err := dec.Decode(&req); err != nil || req.XMLName.Space != adRequestNS {
		http.Error(w, "Not an autodiscover request.", http.StatusBadRequest)
		return
	}
	addr := strings.TrimSpace(req.Request.EMailAddress)
	resp := adResponse{NS: adResponseNS, Response: adBody{NS: adOutlookNS}}
	local, _, ok := h.splitAddress(addr)
	if !ok {
		resp.Response.Error = &adError{Time: "00:00:00", ID: "0", ErrorCode: 600, Message: "Invalid Request", DebugData: "not an address of a domain served here"}
		writeXML(w, adContentType, resp)
		return
	}
	acct := &adAccount{AccountType: "email", Action: "settings"}
	for _, s := range h.servers() {
		enc := "TLS"
		if s.implicit {
			enc = "SSL"
		}
		acct.Protocols = append(acct.Protocols, adProtocol{
			Type: "POP3", Server: h.opts.Mail.Host, Port: s.port, DomainRequired: "off",
			LoginName: local, SPA: "off", SSL: "on", Encryption: enc, AuthRequired: "on",
		})
	}
	resp.Response.User = &adUser{DisplayName: addr}
	resp.Response.Account = acct
	writeXML(w, adContentType, resp)
}

// mobileconfig serves an Apple configuration profile (unsigned) with one
// com.apple.mail.managed payload for ?emailaddress=: the first way to the
// server (POP3S when there is one). Its UUIDs are derived from the address
// and the host, so that installing it again replaces the first.
func (h *Handler) mobileconfig(w http.ResponseWriter, r *http.Request) {
	addr := r.URL.Query().Get("emailaddress")
	local, domain, ok := h.splitAddress(addr)
	srvs := h.servers()
	if !ok || len(srvs) == 0 {
		http.Error(w, "No configuration for this address.", http.StatusNotFound)
		return
	}
	s := srvs[0]
	host := h.opts.Mail.Host
	rev := reverseDNS(domain)
	var b bytes.Buffer
	b.WriteString(xml.Header)
	b.WriteString(`<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">` + "\n")
	b.WriteString("<plist version=\"1.0\">\n<dict>\n")
	b.WriteString("  <key>PayloadContent</key>\n  <array>\n    <dict>\n")
	kv := func(indent, k string, v any) {
		b.WriteString(indent + "<key>" + k + "</key>")
		switch v := v.(type) {
		case string:
			b.WriteString("<string>")
			xml.EscapeText(&b, []byte(v))
			b.WriteString("</string>")
		case int:
			b.WriteString("<integer>" + strconv.Itoa(v) + "</integer>")
		case bool:
			b.WriteString("<" + strconv.FormatBool(v) + "/>")
		}
		b.WriteString("\n")
	}
	in := "      "
	kv(in, "EmailAccountDescription", addr)
	kv(in, "EmailAccountType", "EmailTypePOP")
	kv(in, "EmailAddress", addr)
	kv(in, "IncomingMailServerAuthentication", "EmailAuthPassword")
	kv(in, "IncomingMailServerHostName", host)
	kv(in, "IncomingMailServerPortNumber", s.port)
	kv(in, "IncomingMailServerUseSSL", true)
	kv(in, "IncomingMailServerUsername", local)
	kv(in, "PayloadDescription", "POP3 account "+addr)
	kv(in, "PayloadDisplayName", addr)
	kv(in, "PayloadIdentifier", rev+".postie.mail."+nameUUID("mail", addr, host))
	kv(in, "PayloadType", "com.apple.mail.managed")
	kv(in, "PayloadUUID", nameUUID("mail", addr, host))
	kv(in, "PayloadVersion", 1)
	b.WriteString("    </dict>\n  </array>\n")
	in = "  "
	kv(in, "PayloadDescription", "Sets up the mail account "+addr+" (POP3 on "+host+")")
	kv(in, "PayloadDisplayName", "Mail: "+addr)
	kv(in, "PayloadIdentifier", rev+".postie."+nameUUID("profile", addr, host))
	kv(in, "PayloadRemovalDisallowed", false)
	kv(in, "PayloadType", "Configuration")
	kv(in, "PayloadUUID", nameUUID("profile", addr, host))
	kv(in, "PayloadVersion", 1)
	b.WriteString("</dict>\n</plist>\n")
	w.Header().Set("Content-Type", "application/x-apple-aspen-config")
	w.Header().Set("Content-Disposition", `attachment; filename="`+strings.Map(safeFileRune, local)+`.mobileconfig"`)
	w.Header().Set("Cache-Control", "no-cache")
	w.Write(b.Bytes())
}

func safeFileRune(r rune) rune {
	if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '-' || r == '_' {
		return r
	}
	return '_'
}

func reverseDNS(domain string) string {
	parts := strings.Split(domain, ".")
	for i, j := 0, len(parts)-1; i < j; i, j = i+1, j-1 {
		parts[i], parts[j] = parts[j], parts[i]
	}
	return strings.Join(parts, ".")
}

// nameUUID is a name-based UUID (version 5 layout, SHA-1 replaced by the
// first 16 octets of SHA-256) of the parts: the same parts, the same UUID.
func nameUUID(parts ...string) string {
	s := sha256.Sum256([]byte(strings.Join(parts, "\x00")))
	s[6] = s[6]&0x0f | 0x50
	s[8] = s[8]&0x3f | 0x80
	return strings.ToUpper(fmt.Sprintf("%x-%x-%x-%x-%x", s[0:4], s[4:6], s[6:8], s[8:10], s[10:16]))
}

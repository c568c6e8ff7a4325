package bench

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"time"

	"github.com/postie-mail/postie/internal/maildirname"
	"github.com/postie-mail/postie/internal/wire"
)

// CorpusOptions describe a corpus. The same options give the same bytes
// under the same names, on any machine.
type CorpusOptions struct {
	// Dirs are the Maildirs each message is written to, the same bytes
	// under the same name in each (created where missing, with cur/,
	// new/ and tmp/). Messages go to new/, through tmp/ and a rename.
	Dirs []string
	// Count is the number of messages drawn from Profile.
	Count int
	// Seed decides everything else.
	Seed uint64
	// Profile is the size mix: "mixed" (default: 85% 2–100 KB, 12%
	// 100 KB–1 MB, 3% 1–10 MB, the larger ones with base64 attachments)
	// or "small" (1–4 KB, for huge maildrops).
	Profile string
	// BigSize, when positive, adds one more message of about this many
	// octets, mostly a base64 attachment, with LF line ends (CRLF with
	// BigCRLF, as LMTP and SMTP intake store mail).
	BigSize int64
	BigCRLF bool
	// Owners, when Owners[i] is set, gives the directories and files of
	// Dirs[i] to that owner (Dovecot's mail user). The others stay the
	// caller's: postie's, which trusts the ",D=" field of a name only in a
	// file of its own (a file of another owner is sent the slow way).
	Owners []*Owner
	// NoSizes leaves ",S=", ",W=" and ",D=" (the lines beginning with
	// '.', as postie's delivery records them) out of the file names, so
	// that a server has to read each message once to learn its size.
	NoSizes bool
}

// Owner is a numeric user and group.
type Owner struct{ UID, GID int }

// CorpusStats describe a generated corpus.
type CorpusStats struct {
	Messages   int   `json:"messages"`
	FileBytes  int64 `json:"file_bytes"`
	WireBytes  int64 `json:"wire_bytes"`
	Largest    int64 `json:"largest_wire"`
	CRLF       int   `json:"crlf_files"`
	NoFinalEOL int   `json:"no_final_eol"`
	DotLines   int   `json:"dot_lines"`
	Attachment int   `json:"with_attachment"`
}

// GenerateCorpus writes the corpus o describes.
func GenerateCorpus(o CorpusOptions) (CorpusStats, error) {
	var st CorpusStats
	if len(o.Dirs) == 0 {
		return st, errors.New("bench: corpus: no Maildir to write to")
	}
	switch o.Profile {
	case "", "mixed", "small":
	default:
		return st, fmt.Errorf("bench: corpus: unknown profile %q (mixed or small)", o.Profile)
	}
	owner := func(i int) *Owner {
		if i < len(o.Owners) {
			return o.Owners[i]
		}
		return nil
	}
	for i, d := range o.Dirs {
		if err := makeMaildir(d, owner(i)); err != nil {
			return st, err
		}
	}
	g := &generator{rng: rand.New(rand.NewPCG(o.Seed, 0x706f73746965)), seed: o.Seed}
	n := o.Count
	if o.BigSize > 0 {
		n++
	}
	var buf bytes.Buffer
	for i := range n {
		buf.Reset()
		var size int64
		if i == o.Count {
			size = o.BigSize
		} else {
			size = g.size(o.Profile)
		}
		m := g.message(&buf, i, size)
		if i == o.Count {
			// The big message is stored as MTAs and MDAs write mail:
			// LF line ends, a final one.
			m.crlf, m.noFinalEOL = o.BigCRLF, false
		}
		data := buf.Bytes()
		if m.crlf {
			data = toCRLF(data)
			st.CRLF++
		}
		if m.noFinalEOL {
			data = bytes.TrimRight(data, "\r\n")
			st.NoFinalEOL++
		}
		ws, err := wire.WireSize(bytes.NewReader(data))
		if err != nil {
			return st, err
		}
		name := fmt.Sprintf("%d.M%06dP%dQ%d.bench", 1700000000+int64(i)*7, i%1000000, o.Seed%100000, i+1)
		if !o.NoSizes {
			dc := maildirname.NewDotCounter()
			dc.Write(data)
			name += fmt.Sprintf(",S=%d,W=%d", len(data), ws) + dc.Field()
		}
		for i, d := range o.Dirs {
			if err := deliverFile(d, name, data, owner(i)); err != nil {
				return st, err
			}
		}
		st.Messages++
		st.FileBytes += int64(len(data))
		st.WireBytes += ws
		st.Largest = max(st.Largest, ws)
		st.DotLines += m.dotLines
		if m.attachment {
			st.Attachment++
		}
	}
	return st, nil
}

// makeMaildir creates dir with cur/, new/ and tmp/.
func makeMaildir(dir string, owner *Owner) error {
	for _, sub := range []string{"", "cur", "new", "tmp"} {
		p := filepath.Join(dir, sub)
		if err := os.MkdirAll(p, 0o700); err != nil {
			return fmt.Errorf("bench: corpus: %w", err)
		}
		if owner != nil {
			if err := os.Chown(p, owner.UID, owner.GID); err != nil {
				return fmt.Errorf("bench: corpus: %w", err)
			}
		}
	}
	return nil
}

// deliverFile writes a message as an MDA does: tmp/, then a rename into
// new/. Benchmark data is not fsynced.
func deliverFile(dir, name string, data []byte, owner *Owner) error {
	tmp := filepath.Join(dir, "tmp", name)
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		return fmt.Errorf("bench: corpus: %w", err)
	}
	if owner != nil {
		if err := os.Chown(tmp, owner.UID, owner.GID); err != nil {
			return fmt.Errorf("bench: corpus: %w", err)
		}
	}
	if err := os.Rename(tmp, filepath.Join(dir, "new", name)); err != nil {
		return fmt.Errorf("bench: corpus: %w", err)
	}
	return nil
}

func toCRLF(lf []byte) []byte {
	out := make([]byte, 0, len(lf)+len(lf)/30)
	for {
		i := bytes.IndexByte(lf, '\n')
		if i < 0 {
			return append(out, lf...)
		}
		out = append(out, lf[:i]...)
		out = append(out, '\r', '\n')
		lf = lf[i+1:]
	}
}

type generator struct {
	rng  *rand.Rand
	seed uint64
}

type msgTraits struct {
	crlf, noFinalEOL, attachment bool
	dotLines                     int
}

// size draws a message size from the profile.
func (g *generator) size(profile string) int64 {
	logUniform := func(lo, hi float64) int64 {
		return int64(math.Exp(math.Log(lo) + g.rng.Float64()*(math.Log(hi)-math.Log(lo))))
	}
	if profile == "small" {
		return logUniform(1<<10, 4<<10)
	}
	switch r := g.rng.Float64(); {
	case r < 0.85:
		return logUniform(2<<10, 100<<10)
	case r < 0.97:
		return logUniform(100<<10, 1<<20)
	default:
		return logUniform(1<<20, 10<<20)
	}
}

var words = []string{
	"the", "of", "and", "to", "in", "a", "is", "that", "for", "it", "as", "was", "with", "be", "by",
	"on", "not", "he", "this", "are", "or", "his", "from", "at", "which", "but", "have", "an", "had",
	"they", "you", "were", "their", "one", "all", "we", "can", "her", "has", "there", "been", "if",
	"more", "when", "will", "would", "who", "so", "no", "meeting", "report", "invoice", "attached",
	"please", "review", "thanks", "regards", "project", "schedule", "budget", "server", "mailbox",
	"delivery", "tomorrow", "Monday", "quarter", "draft", "version", "update", "question", "answer",
	"customer", "order", "shipment", "contract", "agenda", "minutes", "follow-up", "deadline",
	"naïve", "café", "Grüße", "déjà", "vu", "résumé", "señor", "Zürich", "€100", "naïveté",
}

var names = []string{"Alice Example", "Bob Sender", "Carol Müller", "Dave O'Brien", "Eve Lovelace", "Frank Zappa", "Grace Hopper", "Heidi Klum"}

// message writes message i of about size octets (LF line ends) to b.
func (g *generator) message(b *bytes.Buffer, i int, size int64) msgTraits {
	r := g.rng
	t := msgTraits{crlf: r.Float64() < 0.3, noFinalEOL: r.Float64() < 0.02}
	date := time.Unix(1704067200+int64(i)*113, 0).UTC().Format(time.RFC1123Z)
	from := names[r.IntN(len(names))]
	fmt.Fprintf(b, "Return-Path: <sender%d@example.org>\n", r.IntN(1000))
	fmt.Fprintf(b, "Delivered-To: user@example.net\n")
	fmt.Fprintf(b, "Received: from mail%d.example.org (mail%d.example.org [192.0.2.%d])\n\tby mx.example.net (Postfix) with ESMTPS id %X\n\tfor <user@example.net>; %s\n", i%50, i%50, i%250+1, r.Uint32(), date)
	fmt.Fprintf(b, "Date: %s\nFrom: %s <sender@example.org>\nTo: <user@example.net>\n", date, from)
	b.WriteString("Subject: ")
	g.words(b, 3+r.IntN(6))
	fmt.Fprintf(b, "\nMessage-ID: <%d.%d.bench@example.org>\nMIME-Version: 1.0\n", g.seed, i)

	t.attachment = size > 100<<10 || size > 10<<10 && r.Float64() < 0.15
	if !t.attachment {
		b.WriteString("Content-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: 8bit\n\n")
		t.dotLines = g.text(b, size)
		return t
	}
	boundary := fmt.Sprintf("=_bench_%d_%d", g.seed, i)
	fmt.Fprintf(b, "Content-Type: multipart/mixed; boundary=\"%s\"\n\nThis is a multi-part message in MIME format.\n\n", boundary)
	fmt.Fprintf(b, "--%s\nContent-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: 8bit\n\n", boundary)
	t.dotLines = g.text(b, int64(b.Len())+int64(1<<10+r.IntN(7<<10)))
	fmt.Fprintf(b, "\n--%s\nContent-Type: application/octet-stream; name=\"file%d.bin\"\nContent-Transfer-Encoding: base64\nContent-Disposition: attachment; filename=\"file%d.bin\"\n\n", boundary, i, i)
	// base64 lines of 76 characters encode 57 octets, plus the line end.
	left := max(size-int64(b.Len())-int64(len(boundary))-8, 57)
	raw := make([]byte, left/77*57+57)
	var seed [32]byte
	for k := range 4 {
		v := r.Uint64()
		for j := range 8 {
			seed[k*8+j] = byte(v >> (8 * j))
		}
	}
	rand.NewChaCha8(seed).Read(raw)
	line := make([]byte, 76)
	for len(raw) > 0 {
		n := min(57, len(raw))
		base64.StdEncoding.Encode(line, raw[:n])
		b.Write(line[:base64.StdEncoding.EncodedLen(n)])
		b.WriteByte('\n')
		raw = raw[n:]
	}
	fmt.Fprintf(b, "--%s--\n", boundary)
	return t
}

// text writes lines of prose until b holds about upto octets; some lines
// start with a dot, some are a lone ".", quoted, or begin with "From ".
// It returns how many lines start with a dot.
func (g *generator) text(b *bytes.Buffer, upto int64) int {
	r := g.rng
	dots := 0
	for int64(b.Len()) < upto {
		switch p := r.Float64(); {
		case p < 0.06:
			b.WriteByte('\n') // paragraph break
			continue
		case p < 0.075:
			b.WriteByte('.') // ".hidden", "..", "...and"
			dots++
			if r.IntN(3) == 0 {
				b.WriteByte('.')
			}
		case p < 0.078:
			b.WriteString(".\n") // would end the message if not stuffed
			dots++
			continue
		case p < 0.09:
			b.WriteString("> ")
		case p < 0.093:
			b.WriteString("From ")
		}
		g.words(b, 5+r.IntN(8))
		b.WriteByte('\n')
	}
	return dots
}

func (g *generator) words(b *bytes.Buffer, n int) {
	for k := range n {
		if k > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(words[g.rng.IntN(len(words))])
	}
}

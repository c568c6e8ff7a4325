package sasl

import "crypto/tls"

// ChannelBinding is the channel binding of one connection (RFC 5056), for
// the SCRAM -PLUS mechanisms.
type ChannelBinding struct {
	// Type is the channel binding type: ChannelBindingTLSUnique or
	// ChannelBindingTLSExporter; "" for none.
	Type string
	// Data is the binding data of Type for this connection.
	Data []byte
}

// Channel binding types.
const (
	// ChannelBindingTLSUnique is RFC 5929 §3 tls-unique: the first
	// Finished message of the TLS 1.2 handshake.
	ChannelBindingTLSUnique = "tls-unique"
	// ChannelBindingTLSExporter is RFC 9266 tls-exporter: 32 octets of
	// keying material exported with the label "EXPORTER-Channel-Binding"
	// and no context, for TLS 1.3.
	ChannelBindingTLSExporter = "tls-exporter"
)

// ChannelBindingFromTLS returns the binding of a completed TLS handshake:
// tls-exporter for TLS 1.3 (RFC 9266), tls-unique for TLS 1.2 (RFC 5929;
// crypto/tls leaves it empty for a resumed session without the extended
// master secret, where it would be unsafe). The zero ChannelBinding (no
// -PLUS) when cs is nil, the handshake is incomplete, or nothing applies.
func ChannelBindingFromTLS(cs *tls.ConnectionState) ChannelBinding {
	if cs == nil || !cs.HandshakeComplete {
		return ChannelBinding{}
	}
	switch cs.Version {
	case tls.VersionTLS13:
		ekm, err := cs.ExportKeyingMaterial("EXPORTER-Channel-Binding", nil, 32)
		if err != nil {
			return ChannelBinding{}
		}
		return ChannelBinding{Type: ChannelBindingTLSExporter, Data: ekm}
	case tls.VersionTLS12:
		if len(cs.TLSUnique) == 0 {
			return ChannelBinding{}
		}
		return ChannelBinding{Type: ChannelBindingTLSUnique, Data: cs.TLSUnique}
	}
	return ChannelBinding{}
}

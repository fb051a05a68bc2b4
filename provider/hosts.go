package provider

import (
	"net"
	"net/netip"
	"strconv"
	"strings"
)

// hostPort is one element of [Config.Host]: a host and, when the element names one, its
// own port (0 otherwise).
type hostPort struct {
	host string
	port int
}

// splitHosts splits a host list ("db1,db2:5433,[::1]:5434,/var/run/postgresql") into
// its elements. An element that is not a valid host[:port] is returned as its host with
// port -1, for Validate to report.
func splitHosts(list string) []hostPort {
	parts := strings.Split(list, ",")
	out := make([]hostPort, 0, len(parts))
	for _, p := range parts {
		out = append(out, splitHost(strings.TrimSpace(p)))
	}
	return out
}

func splitHost(s string) hostPort {
	switch {
	case strings.HasPrefix(s, "/"):
		return hostPort{host: s}
	case strings.HasPrefix(s, "["):
		end := strings.IndexByte(s, ']')
		if end < 0 {
			return hostPort{host: s, port: -1}
		}
		host, rest := s[1:end], s[end+1:]
		if rest == "" {
			return hostPort{host: host}
		}
		if !strings.HasPrefix(rest, ":") {
			return hostPort{host: host, port: -1}
		}
		return hostPort{host: host, port: portOf(rest[1:])}
	case strings.Count(s, ":") == 1:
		host, port, _ := strings.Cut(s, ":")
		return hostPort{host: host, port: portOf(port)}
	default:
		return hostPort{host: s} // a name, or an IPv6 address without a port
	}
}

// portOf converts a port, giving -1 for anything but a number in 1-65535.
func portOf(s string) int {
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 || n > 65535 {
		return -1
	}
	return n
}

// joinHosts is the inverse of splitHosts.
func joinHosts(hps []hostPort) string {
	parts := make([]string, len(hps))
	for i, hp := range hps {
		parts[i] = hp.String()
	}
	return strings.Join(parts, ",")
}

// String returns host, host:port or [v6]:port.
func (hp hostPort) String() string {
	if hp.port <= 0 {
		return hp.host
	}
	return net.JoinHostPort(hp.host, strconv.Itoa(hp.port))
}

// validHost accepts a Unix socket directory (an absolute path without NUL), an IP
// address (IPv6 with an optional zone), or a DNS-style host name (letters, digits, '-',
// '_' and '.', at most 253 bytes).
func validHost(h string) bool {
	if strings.HasPrefix(h, "/") {
		return strings.IndexByte(h, 0) < 0 && !strings.Contains(h, ",")
	}
	if _, err := netip.ParseAddr(h); err == nil {
		return true
	}
	if h == "" || len(h) > 253 {
		return false
	}
	for _, r := range h {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.') {
			return false
		}
	}
	return true
}

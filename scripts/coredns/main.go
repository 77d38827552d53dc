// Command coredns is the test node's cluster DNS: CoreDNS with only the plugins a one-node test
// cluster uses. CoreDNS's own main links every plugin (cloud DNS providers, etcd, ...), which
// would double the build on a small machine for nothing; CoreDNS documents this way of choosing
// plugins (set dnsserver.Directives, import the plugins, call coremain.Run).
package main

import (
	"github.com/coredns/coredns/core/dnsserver"
	"github.com/coredns/coredns/coremain"

	_ "github.com/coredns/coredns/plugin/bind"
	_ "github.com/coredns/coredns/plugin/cache"
	_ "github.com/coredns/coredns/plugin/errors"
	_ "github.com/coredns/coredns/plugin/health"
	_ "github.com/coredns/coredns/plugin/kubernetes"
	_ "github.com/coredns/coredns/plugin/log"
	_ "github.com/coredns/coredns/plugin/ready"
)

// The order plugins handle a query in: CoreDNS's plugin.cfg order, restricted to those imported.
var directives = []string{"bind", "ready", "health", "errors", "log", "cache", "kubernetes"}

func init() { dnsserver.Directives = directives }

func main() { coremain.Run() }

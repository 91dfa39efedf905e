// HTTPS test client (Go crypto/tls, HTTP/1.1): waits for a line on stdin (so
// the test can attach first), then GETs each path on one keep-alive
// connection and prints each status. Usage: client PORT PATH...
// With SONDE_H2=1 it speaks HTTP/2 (ALPN h2, Go's default) and fails unless
// every response came over HTTP/2; otherwise HTTP/1.1 only.
package main

import (
	"bufio"
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"os"
)

func main() {
	tr := &http.Transport{
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true},
		// HTTP/1.1 only: a non-nil empty map turns HTTP/2 off.
		TLSNextProto:        map[string]func(string, *tls.Conn) http.RoundTripper{},
		MaxIdleConnsPerHost: 1,
	}
	h2 := os.Getenv("SONDE_H2") == "1"
	if h2 {
		tr.TLSNextProto = nil
		tr.ForceAttemptHTTP2 = true
	}
	client := &http.Client{Transport: tr}
	bufio.NewReader(os.Stdin).ReadString('\n')
	for _, path := range os.Args[2:] {
		resp, err := client.Get("https://127.0.0.1:" + os.Args[1] + path)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if h2 && resp.ProtoMajor != 2 {
			fmt.Fprintln(os.Stderr, "not HTTP/2:", resp.Proto)
			os.Exit(1)
		}
		fmt.Println(resp.StatusCode)
	}
}

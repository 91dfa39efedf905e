// A Go HTTPS client for tests/tests/agent_l7.rs: Go's own crypto/tls (no OpenSSL), every
// request on one keep-alive connection, the test server's certificate not verified.
// Prints {"statuses": [...], "ns": [...]} with its own timing of each request.
//
// usage: l7_goclient BASE_URL PATH...
package main

import (
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"time"
)

func main() {
	// The agent probes a Go binary it has not seen before from 0.2 s after the
	// process starts (its exe is read after exec; docs/l7.md, TLS): a process
	// that finishes its TLS sooner is not seen. Wait past that, so this test
	// checks the capture itself; the gap is documented, not hidden.
	time.Sleep(1500 * time.Millisecond)
	client := &http.Client{
		Timeout: 30 * time.Second,
		Transport: &http.Transport{
			TLSClientConfig:   &tls.Config{InsecureSkipVerify: true},
			ForceAttemptHTTP2: false,
		},
	}
	var statuses []int
	var times []int64
	for _, path := range os.Args[2:] {
		t0 := time.Now()
		resp, err := client.Get(os.Args[1] + path)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		times = append(times, time.Since(t0).Nanoseconds())
		statuses = append(statuses, resp.StatusCode)
	}
	out, _ := json.Marshal(map[string]interface{}{"statuses": statuses, "ns": times})
	fmt.Println(string(out))
}

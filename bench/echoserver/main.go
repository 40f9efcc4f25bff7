// Command echoserver is the intake benchmark's yardstick: an Echo server whose event
// route only parses the form and answers 200, with nothing stored.
package main

import (
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"

	"github.com/labstack/echo/v4"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:0", "listen address")
	flag.Parse()
	e := echo.New()
	e.HideBanner, e.HidePort = true, true
	e.POST("/bitrix/events", func(c echo.Context) error {
		if _, err := c.FormParams(); err != nil {
			return c.JSON(http.StatusBadRequest, map[string]string{"error": "malformed"})
		}
		return c.JSON(http.StatusOK, map[string]string{"result": "ok"})
	})
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	// The benchmark reads the address from the first line.
	fmt.Println(ln.Addr().String())
	if err := http.Serve(ln, e); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

// Package testkit holds helpers shared by Herald's tests: finding and driving a headless
// Chromium for the browser tests, and picking free loopback addresses for tests that start
// external servers (redis-server, nats-server, ...).
//
// It is for _test.go files only: nothing outside tests may import it, since it pulls in the
// testing package and the browser driver.
package testkit

package main

func runDemo(args []string) error   { return usagef("not yet") }
func runLogs(args []string) error   { return usagef("not yet") }
func runReport(args []string) error { return usagef("not yet") }
func runBench(args []string) error  { return usagef("not yet") }

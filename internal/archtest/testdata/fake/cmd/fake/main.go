// Command fake links a test helper.
package main

import "example.com/fake/helper"

func main() { println(helper.Name) }

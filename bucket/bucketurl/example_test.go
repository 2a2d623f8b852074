package bucketurl_test

import (
	"fmt"

	"github.com/twoway/twoway/bucket/bucketurl"
)

func ExampleParse() {
	loc, err := bucketurl.Parse("s3://twoway/prod?endpoint=http://127.0.0.1:9000&path_style=true")
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(loc.Kind, loc.S3.Bucket, loc.S3.Prefix, loc.S3.Endpoint, loc.S3.PathStyle)

	loc, _ = bucketurl.Parse("/var/lib/twoway")
	fmt.Println(loc.Kind, loc.Dir)

	_, err = bucketurl.Parse("s3:/twoway")
	fmt.Println(err)
	// Output:
	// s3 twoway prod http://127.0.0.1:9000 true
	// file /var/lib/twoway
	// bad bucket URL "s3:/twoway": "s3:" must be followed by "//"; want a directory path, file:///path, or s3://bucket/prefix?endpoint=http://127.0.0.1:9000&region=us-east-1
}

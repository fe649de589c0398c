/* fuzz_metadata.c - a metadata blob: gunzip_buffer() under the
 * METADATA_JSON_MAX cap, then metadata_parse(); an input that is not gzip
 * goes to metadata_parse() as it is.
 *
 * Checks: nothing inflated past the cap is kept (a few KB can be
 * gigabytes); a parsed metadata document has as many indexes as it says,
 * and at most that many to build; a failure says why.
 */
#include "config.h"

#include "bson_stream.h"
#include "fuzz.h"
#include "metadata_json.h"

static void parse(const char *json, size_t len)
{
	char err[512];
	int n = -1;
	bson_t *doc;

	err[0] = '\0';
	doc = metadata_parse(json, len, &n, err, sizeof(err));
	if (doc == NULL) {
		FUZZ_CHECK(err[0] != '\0', "failed without a message");
		return;
	}
	FUZZ_CHECK(n >= 0 && metadata_buildable(doc) <= n, "%d indexes, %d to build", n,
		   metadata_buildable(doc));
	FUZZ_CHECK(metadata_check(json, len, err, sizeof(err)) == n, "check disagrees");
	bson_destroy(doc);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char err[512], *json;
	size_t len;

	if (size > 1024 * 1024)
		return 0;
	if (size >= 2 && data[0] == 0x1f && data[1] == 0x8b) {
		err[0] = '\0';
		if (gunzip_buffer(data, size, METADATA_JSON_MAX, &json, &len, err,
				  sizeof(err)) != 0) {
			FUZZ_CHECK(json == NULL && err[0] != '\0', "a failure kept data or no reason");
			return 0;
		}
		FUZZ_CHECK(len <= METADATA_JSON_MAX && json[len] == '\0', "%zu bytes kept", len);
		parse(json, strlen(json));
		free(json);
		return 0;
	}
	json = fuzz_cstr(data, size);
	parse(json, strlen(json));
	free(json);
	return 0;
}

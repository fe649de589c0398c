/* azure_xml.h - the XML documents Azure Blob storage answers with.
 *
 * <Error><Code/><Message/></Error> replies and List Blobs pages
 * (EnumerationResults), parsed with libxml2 without network access or
 * entity expansion.  Pure functions over a buffer, so tests feed them
 * canned documents.
 */
#ifndef MAB_AZURE_XML_H
#define MAB_AZURE_XML_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

/* One entry of a listing, or the properties of one blob. */
struct azure_blob_item {
	char *name;
	bool is_prefix;           /* a BlobPrefix (listing with a delimiter) */
	uint64_t size;
	char *content_md5;        /* base64, "" when the blob has none */
	char *content_type;
	char *etag;
	time_t last_modified;     /* (time_t)-1 when unknown */
	char **meta_names;
	char **meta_values;
	size_t n_meta;
};

void azure_blob_item_free(struct azure_blob_item *item);
/* Value of metadata name (case-insensitive), NULL when absent. */
const char *azure_blob_item_meta(const struct azure_blob_item *item, const char *name);

/* Called for every entry in document order; non-zero stops the listing
 * and is returned by the lister. */
typedef int (*azure_list_fn)(void *ctx, const struct azure_blob_item *item);

/* Parses one List Blobs page.  *next_marker gets a malloc'd NextMarker or
 * NULL at the last page.  Returns 0, the callback's non-zero value, or -1
 * with a message in err when the document is not a listing. */
int azure_parse_blob_list(const char *xml, size_t len, azure_list_fn fn, void *ctx,
			  char **next_marker, char *err, size_t errlen);

/* Extracts Code and Message from an <Error> document; false when the body
 * is not one (empty, HTML from a proxy, ...).  Message is cut to its first
 * line, since Azure appends RequestId/Time lines. */
bool azure_parse_error_body(const char *body, size_t len, char *code, size_t code_size,
			    char *message, size_t message_size);

/* Calls xmlInitParser once; harmless to repeat. */
void azure_xml_init(void);

#endif

"""Drives verdict-async with the original product's own Python SDK (attachmentAV 0.5.0), the way
its published examples do. Run by tests/it/sdk.rs with: BASE_URL API_KEY CLEAN_URL EICAR_URL
BUCKET KEY CALLBACK_URL. Prints one JSON object of what the SDK returned; exits non-zero if a
call raised."""

import json
import sys
import time
import uuid

import attachmentav

base, key, clean_url, eicar_url, bucket, s3_key, callback_url = sys.argv[1:8]
out = {}


def client(bearer=True):
    configuration = attachmentav.Configuration()
    configuration.host = base + "/api/v1"
    if bearer:
        # The self-hosted product's way: the key as a bearer token.
        configuration.access_token = key
    else:
        # The SaaS way: the x-api-key header.
        configuration.api_key["apiKeyAuth"] = key
    return attachmentav.AttachmentAVApi(attachmentav.ApiClient(configuration))


def request(model, **fields):
    # The SDK refuses non-public URLs before sending (as verdict-async does unless allowed); the
    # origin and callback receiver here are on loopback, so those models are built without the
    # client-side check. Everything else is the SDK's own code path.
    return model.model_construct(**fields)


api = client()
# EICAR, assembled from parts so no file holds it whole.
eicar = ("X5O!P%@AP[4\\PZX54(P^)7CC)7}$" + "EICAR-STANDARD-ANTIVIRUS-" + "TEST-FILE!$H+H*").encode()
out["sync_binary"] = api.scan_sync_binary_post(eicar).to_dict()
out["sync_binary_api_key"] = client(bearer=False).scan_sync_binary_post(b"hello").to_dict()
out["sync_download"] = api.scan_sync_download_post(
    request(attachmentav.SyncDownloadScanRequest, download_url=clean_url)
).to_dict()
out["sync_s3"] = api.scan_sync_s3_post(
    attachmentav.SyncS3ScanRequest(bucket=bucket, key=s3_key)
).to_dict()

trace_id = str(uuid.uuid4())
api.scan_async_download_post(
    request(attachmentav.AsyncDownloadScanRequest, download_url=eicar_url, trace_id=trace_id)
)
for _ in range(200):
    try:
        out["async_polled"] = api.scan_async_result_get(trace_id).to_dict()
        break
    except attachmentav.exceptions.NotFoundException:
        time.sleep(0.05)

api.scan_async_s3_post(
    request(
        attachmentav.AsyncS3ScanRequest,
        bucket=bucket,
        key=s3_key,
        callback_url=callback_url,
        callback_headers={"X-From-Sdk": "yes"},
        custom_data="sdk-s3",
    )
)
out["async_s3_submitted"] = True

try:
    bad = attachmentav.Configuration()
    bad.host = base + "/api/v1"
    bad.access_token = "not-a-key"
    attachmentav.AttachmentAVApi(attachmentav.ApiClient(bad)).scan_sync_binary_post(b"x")
    out["bad_key"] = "accepted"
except attachmentav.exceptions.UnauthorizedException:
    out["bad_key"] = "401"

print(json.dumps(out))

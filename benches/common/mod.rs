//! Request heads shared by the benches.

/// A head as a desktop browser sends it on a page load with session cookies: 12 headers.
pub const BROWSER_HEAD: &[u8] = b"GET /account/settings?tab=profile HTTP/1.1\r\n\
Host: app.example.com\r\n\
Connection: keep-alive\r\n\
Cache-Control: max-age=0\r\n\
Upgrade-Insecure-Requests: 1\r\n\
User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36\r\n\
Accept: text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8\r\n\
Sec-Fetch-Site: same-origin\r\n\
Sec-Fetch-Mode: navigate\r\n\
Referer: https://app.example.com/account\r\n\
Accept-Encoding: gzip, deflate, br, zstd\r\n\
Accept-Language: en-US,en;q=0.9,de;q=0.8\r\n\
Cookie: session=eyJ1c2VyX2lkIjo0MiwiZXhwIjoxNzAwMDAwMDAwfQ.Zm9vYmFyYmF6cXV4; csrftoken=3f9a1c2b7d8e4f60a1b2c3d4e5f60718; theme=dark; _ga=GA1.1.123456789.1700000000\r\n\
\r\n";

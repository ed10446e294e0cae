//! A small static site on disk for the static file tests, with secret files next to it that no
//! request may reach.
//!
//! ```text
//! <temp>/secret                   secret, two levels above static/
//! <temp>/site/secret              secret, next to static/
//! <temp>/site/Cargo.toml          secret, next to static/
//! <temp>/site/static/             served under /static/
//!     style.css app.js logo.svg index.html noise.bin sub/page.txt
//!     escape.txt -> <temp>/secret (symlink to a file outside the static directory)
//!     escape-dir -> <temp>        (symlink to a directory outside the static directory)
//! <temp>/site/resources/readme.txt served under /resources/
//! ```

use std::path::PathBuf;

use super::noise_bytes;
use super::process::TempDir;

/// Bytes in every secret file; no response body may contain them.
pub const SECRET_MARKER: &[u8] = b"RINGFRONT-TEST-SECRET-do-not-serve";

/// The site described in the module documentation, removed on drop.
#[derive(Debug)]
pub struct Site {
    dir: TempDir,
}

impl Site {
    /// Writes the site and the secret files into a new temporary directory.
    ///
    /// # Panics
    /// Panics if a file or symlink cannot be created.
    pub fn create() -> Site {
        let dir = TempDir::new("site");

        let mut secret = SECRET_MARKER.to_vec();
        secret.extend_from_slice(b"\n");
        dir.write("secret", &secret);
        dir.write("site/secret", &secret);
        dir.write("site/Cargo.toml", &secret);

        dir.write("site/static/style.css", stylesheet());
        dir.write("site/static/app.js", SCRIPT);
        dir.write("site/static/logo.svg", LOGO);
        dir.write("site/static/index.html", INDEX);
        dir.write("site/static/noise.bin", noise_bytes(64 * 1024));
        dir.write("site/static/sub/page.txt", "a page in a subdirectory\n");
        dir.write(
            "site/resources/readme.txt",
            "served from the resources directory\n",
        );

        symlink(&dir.join("secret"), &dir.join("site/static/escape.txt"));
        symlink(dir.path(), &dir.join("site/static/escape-dir"));
        Site { dir }
    }

    /// Returns the directory to serve under `/static/`.
    pub fn static_dir(&self) -> PathBuf {
        self.dir.join("site/static")
    }

    /// Returns the directory to serve under `/resources/`.
    pub fn resources_dir(&self) -> PathBuf {
        self.dir.join("site/resources")
    }

    /// Returns the bytes of `relative`, a path under `site/`, such as `static/style.css`.
    ///
    /// # Panics
    /// Panics if the file cannot be read.
    pub fn read(&self, relative: &str) -> Vec<u8> {
        let path = self.dir.join("site").join(relative);
        match std::fs::read(&path) {
            Ok(bytes) => bytes,
            Err(error) => panic!("failed to read {}: {error}", path.display()),
        }
    }
}

fn symlink(target: &std::path::Path, link: &std::path::Path) {
    if let Err(error) = std::os::unix::fs::symlink(target, link) {
        panic!(
            "failed to create symlink {} -> {}: {error}",
            link.display(),
            target.display()
        );
    }
}

/// Returns a stylesheet of about 6 KiB with enough repetition to compress well.
fn stylesheet() -> String {
    let mut css = String::from(
        ":root { --ink: #1d2433; --paper: #fbfaf7; --accent: #b8432f; }\n\
         body { margin: 0; font: 16px/1.5 system-ui, sans-serif; color: var(--ink); }\n",
    );
    for index in 0..60 {
        css.push_str(&format!(
            ".card-{index} {{ padding: {}px; border: 1px solid #d9d4c7; border-radius: 4px; }}\n",
            4 + index % 12
        ));
    }
    css
}

const SCRIPT: &str = "document.addEventListener('DOMContentLoaded', () => {\n\
  const stamp = document.querySelector('#stamp');\n\
  if (stamp) stamp.textContent = new Date().toISOString();\n\
});\n";

const LOGO: &str = "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 32 32\">\
<circle cx=\"16\" cy=\"16\" r=\"14\" fill=\"#b8432f\"/></svg>\n";

const INDEX: &str = "<!doctype html>\n<html><head><title>test site</title>\
<link rel=\"stylesheet\" href=\"/static/style.css\"></head>\
<body><p id=\"stamp\"></p><script src=\"/static/app.js\"></script></body></html>\n";

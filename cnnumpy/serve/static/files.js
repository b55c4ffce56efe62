// files.js: pictures from files (dropped or opened), made fit to send. The server
// decodes PNG and JPEG of up to 5 MB; the browser reads many more kinds, and shows
// a photo upright as its EXIF tag says. What it can read goes to the server in a
// form the server takes.

const SEND_TYPES = ["image/png", "image/jpeg"]; // what the server decodes
const SEND_BYTES = 4 * 2 ** 20; // a file over it is made smaller (the server takes 5 MB)
const SEND_SIDE = 1024; // pixels a side of a file made smaller: plenty for 32 x 32

// What to send for a dropped or opened file: a PNG or JPEG within the server's
// limit as it is (the server fits it to the model's input); any other picture the
// browser reads (WebP, GIF, BMP, a photo of many MB) as a PNG or JPEG of at most
// SEND_SIDE pixels a side, upright as the browser shows it.
export async function sendable(file, picture) {
  const plain = SEND_TYPES.includes(file.type) && file.size <= SEND_BYTES;
  if (plain || !picture) return file;
  const scale = Math.min(1, SEND_SIDE / Math.max(picture.width, picture.height));
  const copy = document.createElement("canvas");
  copy.width = Math.max(1, Math.round(picture.width * scale));
  copy.height = Math.max(1, Math.round(picture.height * scale));
  copy.getContext("2d").drawImage(picture, 0, 0, copy.width, copy.height);
  const type = file.type === "image/jpeg" ? "image/jpeg" : "image/png"; // PNG keeps transparency
  return new Promise((resolve) => copy.toBlob((blob) => resolve(blob ?? file), type, 0.92));
}

// The same for a file not decoded yet (the Inside-one-step tab's "Open an image").
export async function sendableFile(file) {
  let picture = null;
  try {
    picture = await createImageBitmap(file);
  } catch {
    // the browser cannot read it; the server will say what is wrong with it
  }
  return sendable(file, picture);
}

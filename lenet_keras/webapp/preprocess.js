// export --web: a photo -> the model's input, in a worker (a 50-megapixel photo never
// freezes the page). The same pixels `lenet-keras predict` computes (predictors.
// decode_image: PIL opens the file, converts it to RGB, resizes it with
// Image.resize(size, BILINEAR), and a 1-channel model takes ITU-R 601 luma rounded):
//
// - decode: the browser's decoder, with no colour-space conversion and no
//   premultiplied alpha (PIL applies neither); EXIF orientation is applied (PIL does
//   not), so a phone photo taken upright is classified upright.
// - resize: PIL's BILINEAR resampling, ported below: a separable convolution whose
//   triangle filter widens by the downscale factor (antialiased), with PIL's 22-bit
//   fixed-point weights and rounding, horizontal pass first. An image already at the
//   model's size is not resampled at all, as in PIL.
// - luma: float32 0.299 R + 0.587 G + 0.114 B summed in that order, rounded half to
//   even (numpy's rint): equal to sources.to_grayscale for all 16.7 M colours.
// - above MAX_EXACT_PIXELS (a 16-megapixel photo and up) the browser first shrinks the
//   decoded photo to that many pixels ("high" quality), then the port above runs.
"use strict";

const PRECISION_BITS = 22;                 // PIL: 32 - 8 bits of result - 2 of headroom
const MAX_EXACT_PIXELS = 4096 * 4096;
const PREVIEW_SIZE = 512;                  // the page's preview, longest side
const LUMA = [Math.fround(0.299), Math.fround(0.587), Math.fround(0.114)];

// PIL's precompute_coeffs + normalize_coeffs_8bpc for the bilinear (triangle) filter.
function coefficients(inSize, outSize) {
  const scale = inSize / outSize;
  const filterScale = Math.max(scale, 1);
  const support = filterScale;             // the triangle's support is 1, widened
  const ksize = Math.ceil(support) * 2 + 1;
  const inverse = 1 / filterScale;
  const bounds = new Int32Array(outSize * 2);
  const weights = new Int32Array(outSize * ksize);
  const k = new Float64Array(ksize);
  for (let out = 0; out < outSize; out++) {
    const center = (out + 0.5) * scale;
    const first = Math.max(Math.trunc(center - support + 0.5), 0);
    const count = Math.min(Math.trunc(center + support + 0.5), inSize) - first;
    let sum = 0;
    for (let i = 0; i < count; i++) {
      const t = Math.abs((i + first - center + 0.5) * inverse);
      k[i] = t < 1 ? 1 - t : 0;
      sum += k[i];
    }
    for (let i = 0; i < count; i++) {
      const w = sum !== 0 ? k[i] / sum : k[i];
      weights[out * ksize + i] = Math.trunc(w < 0 ? -0.5 + w * 2 ** PRECISION_BITS
                                                  : 0.5 + w * 2 ** PRECISION_BITS);
    }
    bounds[out * 2] = first;
    bounds[out * 2 + 1] = count;
  }
  return { ksize, bounds, weights };
}

const clip8 = (sum) => Math.min(255, Math.max(0, sum >> PRECISION_BITS));

// RGBA rows [height][width][4] -> RGBA [outHeight][outWidth][4], as PIL resizes RGB.
function resize(rgba, width, height, outWidth, outHeight) {
  if (width === outWidth && height === outHeight) return rgba;
  const HALF = 1 << (PRECISION_BITS - 1);
  const vertical = coefficients(height, outHeight);
  let source = rgba, sourceWidth = width, rowOffset = 0;
  if (width !== outWidth) {
    // Only the rows the vertical pass reads.
    const firstRow = vertical.bounds[0];
    const lastRow = vertical.bounds[outHeight * 2 - 2] + vertical.bounds[outHeight * 2 - 1];
    const { ksize, bounds, weights } = coefficients(width, outWidth);
    const temp = new Uint8ClampedArray(outWidth * (lastRow - firstRow) * 4);
    for (let y = firstRow; y < lastRow; y++) {
      const row = y * width * 4;
      for (let x = 0; x < outWidth; x++) {
        const first = bounds[x * 2], count = bounds[x * 2 + 1], kk = x * ksize;
        let r = HALF, g = HALF, b = HALF;
        for (let i = 0; i < count; i++) {
          const w = weights[kk + i], p = row + (first + i) * 4;
          r += rgba[p] * w; g += rgba[p + 1] * w; b += rgba[p + 2] * w;
        }
        const q = ((y - firstRow) * outWidth + x) * 4;
        temp[q] = clip8(r); temp[q + 1] = clip8(g); temp[q + 2] = clip8(b); temp[q + 3] = 255;
      }
    }
    source = temp; sourceWidth = outWidth; rowOffset = firstRow;
  }
  if (height === outHeight) return source;
  const { ksize, bounds, weights } = vertical;
  const out = new Uint8ClampedArray(outWidth * outHeight * 4);
  for (let y = 0; y < outHeight; y++) {
    const first = bounds[y * 2] - rowOffset, count = bounds[y * 2 + 1], kk = y * ksize;
    for (let x = 0; x < outWidth; x++) {
      let r = HALF, g = HALF, b = HALF;
      for (let i = 0; i < count; i++) {
        const w = weights[kk + i], p = ((first + i) * sourceWidth + x) * 4;
        r += source[p] * w; g += source[p + 1] * w; b += source[p + 2] * w;
      }
      const q = (y * outWidth + x) * 4;
      out[q] = clip8(r); out[q + 1] = clip8(g); out[q + 2] = clip8(b); out[q + 3] = 255;
    }
  }
  return out;
}

// numpy's rint: round half to even.
function rint(x) {
  const floor = Math.floor(x), rest = x - floor;
  if (rest > 0.5) return floor + 1;
  if (rest < 0.5) return floor;
  return floor % 2 === 0 ? floor : floor + 1;
}

function toModelInput(rgba, pixels, channels) {
  const input = new Uint8Array(pixels * channels);
  for (let i = 0; i < pixels; i++) {
    const p = i * 4;
    if (channels === 3) {
      input[i * 3] = rgba[p]; input[i * 3 + 1] = rgba[p + 1]; input[i * 3 + 2] = rgba[p + 2];
    } else {
      const f = Math.fround;
      input[i] = rint(f(f(f(rgba[p] * LUMA[0]) + f(rgba[p + 1] * LUMA[1])) + f(rgba[p + 2] * LUMA[2])));
    }
  }
  return input;
}

async function decode(source) {
  if (source instanceof ImageBitmap) return source;
  if (source.size === 0) throw new Error("the file is empty");
  try {
    return await createImageBitmap(source, { colorSpaceConversion: "none",
                                             premultiplyAlpha: "none" });
  } catch (error) {
    throw new Error("not a readable image file");
  }
}

function pixelsOf(bitmap) {
  const canvas = new OffscreenCanvas(bitmap.width, bitmap.height);
  const context = canvas.getContext("2d", { willReadFrequently: true });
  context.drawImage(bitmap, 0, 0);
  return context.getImageData(0, 0, bitmap.width, bitmap.height).data;
}

async function prepare({ source, height, width, channels, preview }) {
  let bitmap = await decode(source);
  const size = { width: bitmap.width, height: bitmap.height };
  const result = { size };
  if (preview) {
    const scale = Math.min(1, PREVIEW_SIZE / Math.max(size.width, size.height));
    result.preview = await createImageBitmap(bitmap, {
      resizeWidth: Math.max(1, Math.round(size.width * scale)),
      resizeHeight: Math.max(1, Math.round(size.height * scale)), resizeQuality: "medium" });
  }
  if (size.width * size.height > MAX_EXACT_PIXELS) {
    const scale = Math.sqrt(MAX_EXACT_PIXELS / (size.width * size.height));
    const smaller = await createImageBitmap(bitmap, {
      resizeWidth: Math.max(width, Math.floor(size.width * scale)),
      resizeHeight: Math.max(height, Math.floor(size.height * scale)), resizeQuality: "high" });
    bitmap.close();
    bitmap = smaller;
  }
  const rgba = resize(pixelsOf(bitmap), bitmap.width, bitmap.height, width, height);
  bitmap.close();
  result.input = toModelInput(rgba, width * height, channels);
  return result;
}

self.onmessage = async ({ data }) => {
  const started = performance.now();
  try {
    const result = await prepare(data);
    result.ms = performance.now() - started;
    const transfer = [result.input.buffer, ...(result.preview ? [result.preview] : [])];
    self.postMessage({ id: data.id, ...result }, transfer);
  } catch (error) {
    self.postMessage({ id: data.id, error: error.message || String(error) });
  }
};

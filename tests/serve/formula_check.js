// The formula view's arithmetic, checked in the page against the notes' sums done
// by brute force: for random layers with strides and uneven padding, the page's
// forward terms add up to y, its dW terms (input correlated with dy) to dW, and its
// dx terms (the full convolution of dy with the turned kernel) to dx; and its ✓
// tells a right small gradient from a wrong one.
// Run by test_e2e.py through Selenium's execute_async_script: the last argument is
// the callback that takes the result, a list of what went wrong (empty: all right).
const done = arguments[arguments.length - 1];
(async () => {
  const { convLayer, forwardTerms } = await import("/static/conv_layer.js");
  const { inputTerms, weightTerms } = await import("/static/conv_backward.js");
  const { agreement } = await import("/static/mapview.js");
  let seed = 1;
  const random = () => ((seed = (seed * 16807) % 2147483647) / 2147483647) * 2 - 1;
  const nested = (shape) =>
    shape.length === 0 ? random() : Array.from({ length: shape[0] }, () => nested(shape.slice(1)));
  const zeros = (shape) =>
    shape.length === 0 ? 0 : Array.from({ length: shape[0] }, () => zeros(shape.slice(1)));

  // y = b + Σ W x̃, dW = Σ dy x̃, dx = Σ dy W (scattered back), db = Σ dy: by loops
  function layerByLoops(C, H, W, F, K, s, pads) {
    const [[top, bottom], [left, right]] = pads;
    const Ho = Math.floor((H + top + bottom - K) / s) + 1;
    const Wo = Math.floor((W + left + right - K) / s) + 1;
    const x = nested([C, H, W]);
    const weight = nested([F, C, K, K]);
    const bias = nested([F]);
    const dy = nested([F, Ho, Wo]);
    const y = zeros([F, Ho, Wo]);
    const dW = zeros([F, C, K, K]);
    const dx = zeros([C, H, W]);
    for (let f = 0; f < F; f++) {
      for (let i = 0; i < Ho; i++) {
        for (let j = 0; j < Wo; j++) {
          y[f][i][j] = bias[f];
          for (let c = 0; c < C; c++) {
            for (let u = 0; u < K; u++) {
              for (let v = 0; v < K; v++) {
                const h = i * s + u - top;
                const w = j * s + v - left;
                if (h < 0 || h >= H || w < 0 || w >= W) continue; // a padding zero
                y[f][i][j] += weight[f][c][u][v] * x[c][h][w];
                dW[f][c][u][v] += dy[f][i][j] * x[c][h][w];
                dx[c][h][w] += dy[f][i][j] * weight[f][c][u][v];
              }
            }
          }
        }
      }
    }
    const db = dy.map((plane) => plane.flat().reduce((a, b) => a + b, 0));
    return { x, weight, bias, y, dy, dW, db, dx, stride: [s, s], pads, padding_mode: "zeros" };
  }

  const wrong = [];
  const near = (a, b, what) => Math.abs(a - b) <= 1e-9 || wrong.push(`${what}: ${a} != ${b}`);
  const cases = [
    [2, 7, 6, 3, 3, 1, [[1, 1], [1, 1]]],
    [2, 9, 8, 3, 3, 2, [[1, 0], [0, 1]]],
    [1, 8, 8, 2, 5, 2, [[2, 2], [2, 2]]],
    [3, 10, 7, 2, 4, 3, [[0, 2], [1, 1]]],
  ];
  for (const [C, H, W, F, K, s, pads] of cases) {
    const answer = layerByLoops(C, H, W, F, K, s, pads);
    const layer = convLayer(answer);
    const name = `C${C} ${H}x${W} F${F} K${K} s${s}`;
    for (let f = 0; f < F; f++) {
      for (let i = 0; i < layer.outH; i++) {
        for (let j = 0; j < layer.outW; j++) {
          let sum = answer.bias[f];
          for (let c = 0; c < C; c++) sum += forwardTerms(layer, f, c, i, j).sum;
          near(sum, answer.y[f][i][j], `${name} y[${f},${i},${j}]`);
        }
      }
      for (let c = 0; c < C; c++) {
        for (let u = 0; u < K; u++) {
          for (let v = 0; v < K; v++) {
            near(weightTerms(layer, f, c, u, v).sum, answer.dW[f][c][u][v], `${name} dW`);
          }
        }
      }
    }
    for (let c = 0; c < C; c++) {
      for (let h = 0; h < H; h++) {
        for (let w = 0; w < W; w++) {
          let sum = 0;
          for (let f = 0; f < F; f++) sum += inputTerms(layer, f, c, h, w).sum;
          near(sum, answer.dx[c][h][w], `${name} dx[${c},${h},${w}]`);
        }
      }
    }
  }
  if (!agreement(1e-5, 1.00001e-5, 3e-5).startsWith("✓")) wrong.push("a right sum not ticked");
  if (!agreement(1e-5, 2e-5, 3e-5).startsWith("✗")) wrong.push("a wrong small gradient ticked");
  return wrong;
})().then(done, (error) => done([`the check failed: ${error}`]));

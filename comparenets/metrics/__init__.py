"""Scores that are research in themselves, each checked against a reference implementation or
hand-worked values in the tests: detection mAP with NMS (`detection`), edge-map ODS/OIS F-scores
with the Sobel and Canny baselines (`edges`), and image PSNR/SSIM on luminance (`images`)."""

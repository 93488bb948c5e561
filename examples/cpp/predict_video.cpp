// A video (or a camera) in; its true continuation and the predicted one side by side out, with OpenCV.
//
//   vgpt_predict_video BUNDLE IN.mp4|CAMERA_INDEX OUT.mp4 [NUM_CLIPS]
//
// Observes the first M frames (BGR, any size), predicts NUM_CLIPS * G frames, reads as many more frames
// as the truth, and writes one frame per predicted frame: the true frame (cover-resized and
// centre-cropped to the model's size, as the runtime does) on the left, the prediction on the right.
// A source that ends early leaves the left side black.
#include <opencv2/imgproc.hpp>
#include <opencv2/videoio.hpp>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "vgpt/vgpt.hpp"

namespace {

// The frame scaled to cover height x width and centre-cropped (for display only; the runtime does its
// own antialiased resize of what it observes).
cv::Mat fit(const cv::Mat& frame, int width, int height) {
    const double scale = std::max(double(width) / frame.cols, double(height) / frame.rows);
    cv::Mat resized;
    cv::resize(frame, resized, cv::Size(std::max(width, int(std::lround(frame.cols * scale))),
                                        std::max(height, int(std::lround(frame.rows * scale)))),
               0, 0, cv::INTER_AREA);
    const cv::Rect crop((resized.cols - width) / 2, (resized.rows - height) / 2, width, height);
    return resized(crop).clone();
}

bool is_index(const std::string& s) { return !s.empty() && s.find_first_not_of("0123456789") == std::string::npos; }

}  // namespace

int main(int argc, char** argv) {
    if (argc < 4) {
        std::fprintf(stderr, "usage: %s BUNDLE IN.mp4|CAMERA_INDEX OUT.mp4 [NUM_CLIPS]\n", argv[0]);
        return 2;
    }
    const std::string source = argv[2];
    const int num_clips = argc > 4 ? std::atoi(argv[4]) : 1;
    try {
        vgpt::Model model(argv[1]);
        const vgpt_layout layout = model.layout();
        vgpt::Stream stream(model, 0);
        cv::VideoCapture in;
        if (is_index(source)) in.open(std::stoi(source));
        else in.open(source);
        if (!in.isOpened()) throw std::runtime_error("cannot open " + source);
        const double fps = in.get(cv::CAP_PROP_FPS) > 0 ? in.get(cv::CAP_PROP_FPS) : 10.0;

        cv::Mat frame;
        for (int64_t i = 0; !stream.ready(); ++i) {
            if (!in.read(frame)) {
                throw std::runtime_error(source + " ended after " + std::to_string(i) + " frames; the model observes " +
                                         std::to_string(layout.history_frames) + " before it predicts");
            }
            stream.observe(frame.data, frame.cols, frame.rows, frame.step, VGPT_PIXEL_BGR8, i);
        }
        const vgpt_prediction p = stream.predict(num_clips);

        const int W = p.width, H = p.height;
        cv::VideoWriter out(argv[3], cv::VideoWriter::fourcc('m', 'p', '4', 'v'), fps, cv::Size(2 * W, H));
        if (!out.isOpened()) throw std::runtime_error(std::string("cannot write ") + argv[3]);
        int truths = 0;
        for (int f = 0; f < p.num_frames; ++f) {
            cv::Mat side(H, 2 * W, CV_8UC3, cv::Scalar::all(0));
            if (in.read(frame)) {
                fit(frame, W, H).copyTo(side(cv::Rect(0, 0, W, H)));
                ++truths;
            }
            const cv::Mat rgb(H, W, CV_8UC3, const_cast<uint8_t*>(p.frames) + size_t(f) * W * H * 3);
            cv::cvtColor(rgb, side(cv::Rect(W, 0, W, H)), cv::COLOR_RGB2BGR);
            out.write(side);
        }
        std::printf("wrote %d frames (%dx%d: true | predicted, %d with their true frame) to %s\n", p.num_frames,
                    2 * W, H, truths, argv[3]);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "error: %s\n", e.what());
        return 1;
    }
    return 0;
}

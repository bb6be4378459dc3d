// The public gRPC service over a real loopback connection.
#include "api/inference_service.h"

#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include "api/model_info.h"
#include "common/model_weights.h"
#include "tests/test_paths.h"

namespace tpserve {
namespace {

TEST(InferenceServiceTest, GetModelInfoOverLoopback) {
  auto model = OpenModel(testing::GoldenPath("tiny_llama.gguf"));
  ASSERT_TRUE(model.ok()) << model.status();
  auto info = DescribeModel(**model);
  ASSERT_TRUE(info.ok()) << info.status();

  InferenceService service(*info);
  int port = 0;
  grpc::ServerBuilder builder;
  builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(),
                           &port);
  builder.RegisterService(&service);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  ASSERT_NE(server, nullptr);
  ASSERT_GT(port, 0);

  auto channel = grpc::CreateChannel("127.0.0.1:" + std::to_string(port),
                                     grpc::InsecureChannelCredentials());
  auto stub = v1::Inference::NewStub(channel);
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  v1::ModelInfo got;
  grpc::Status s = stub->GetModelInfo(&ctx, v1::GetModelInfoRequest(), &got);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(got.name(), "tiny-llama-golden");
  EXPECT_EQ(got.num_layers(), 2);
  EXPECT_EQ(got.num_heads(), 4);
  EXPECT_EQ(got.num_kv_heads(), 2);
  EXPECT_EQ(got.tokenizer(), "gpt2");
  // 4 heads, 2 KV heads, ffn 128: attn_output is BF16 (any column split),
  // ffn_down Q8_0 (a rank's share of its 128 columns must be whole 32-blocks)
  // -> 1, 2 and 4 (KV heads replicated), not 3.
  ASSERT_EQ(got.tp_options_size(), 3);
  EXPECT_EQ(got.tp_options(1).world_size(), 2);
  EXPECT_EQ(got.tp_options(2).world_size(), 4);
  EXPECT_TRUE(got.tp_options(2).kv_replicated());
  EXPECT_EQ(got.tensor_types().at("Q8_0"), 5);
  server->Shutdown();
}

TEST(ModelInfoTest, HuggingFaceFolderDescription) {
  auto model = OpenModel(testing::GoldenPath("hf_tiny"));
  ASSERT_TRUE(model.ok()) << model.status();
  auto info = DescribeModel(**model);
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_EQ(info->format(), "safetensors");
  EXPECT_EQ(info->num_layers(), 2);
  EXPECT_GT(info->file_bytes(), 0u);
  EXPECT_TRUE(info->tensor_types().contains("BF16") ||
              info->tensor_types().contains("F16"));
}

TEST(ModelInfoTest, DefaultModelDescription) {
  auto model = OpenModel(testing::DefaultModelPath());
  ASSERT_TRUE(model.ok()) << model.status() << "\n" << testing::kModelHint;
  auto info = DescribeModel(**model);
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_EQ(info->weight_type(), "Q4_1");
  EXPECT_TRUE(info->has_chat_template());
  ASSERT_EQ(info->tp_options_size(), 2);  // 9 heads, ffn 1536: TP 1 or 3.
  EXPECT_EQ(info->tp_options(1).world_size(), 3);
  EXPECT_FALSE(info->tp_options(1).kv_replicated());
  std::string text = FormatModelInfo(*info);
  EXPECT_NE(text.find("--tp 1, 3"), std::string::npos) << text;
  EXPECT_NE(text.find("heads (q / kv)    9 / 3, head_dim 64"),
            std::string::npos)
      << text;
}

}  // namespace
}  // namespace tpserve

// gRPC server reflection on the callback API (see grpc_reflection.hpp).
#include <services/grpc/grpc_reflection.hpp>

#include <grpc/health/v1/health.pb.h>
#include <grpc/reflection/v1/reflection.grpc.pb.h>
#include <grpc/reflection/v1alpha/reflection.grpc.pb.h>

#include <google/protobuf/descriptor.h>
#include <google/protobuf/descriptor.pb.h>
#include <grpcpp/grpcpp.h>

#include <unordered_set>

namespace turret::grpc_frontend {
namespace {

namespace gpb = google::protobuf;

/// Answers one request. `Req`/`Resp` are the v1 or v1alpha messages (the two protocols are field-for-field equal).
template <class Req, class Resp>
class answerer {
 public:
  explicit answerer(const std::vector<std::string>& services) : services_(services) {}

  void answer(const Req& rq, Resp& rs) const {
    rs.set_valid_host(rq.host());
    *rs.mutable_original_request() = rq;
    const auto* pool = gpb::DescriptorPool::generated_pool();
    switch (rq.message_request_case()) {
      case Req::kFileByFilename: {
        const auto* f = pool->FindFileByName(rq.file_by_filename());
        if (!f) return error(rs, grpc::StatusCode::NOT_FOUND, "File not found.");
        return files(f, rs);
      }
      case Req::kFileContainingSymbol: {
        const auto* f = pool->FindFileContainingSymbol(rq.file_containing_symbol());
        if (!f) return error(rs, grpc::StatusCode::NOT_FOUND, "Symbol not found.");
        return files(f, rs);
      }
      case Req::kFileContainingExtension: {
        const auto& ext = rq.file_containing_extension();
        const auto* type = pool->FindMessageTypeByName(ext.containing_type());
        if (!type) return error(rs, grpc::StatusCode::NOT_FOUND, "Type not found.");
        const auto* field = pool->FindExtensionByNumber(type, ext.extension_number());
        if (!field) return error(rs, grpc::StatusCode::NOT_FOUND, "Extension not found.");
        return files(field->file(), rs);
      }
      case Req::kAllExtensionNumbersOfType: {
        const auto* type = pool->FindMessageTypeByName(rq.all_extension_numbers_of_type());
        if (!type) return error(rs, grpc::StatusCode::NOT_FOUND, "Type not found.");
        std::vector<const gpb::FieldDescriptor*> exts;
        pool->FindAllExtensions(type, &exts);
        auto* out = rs.mutable_all_extension_numbers_response();
        out->set_base_type_name(type->full_name());
        for (const auto* e : exts) out->add_extension_number(e->number());
        return;
      }
      case Req::kListServices: {
        auto* out = rs.mutable_list_services_response();
        for (const auto& name : services_) out->add_service()->set_name(name);
        return;
      }
      default:
        return error(rs, grpc::StatusCode::UNIMPLEMENTED, "The server does not support this kind of request.");
    }
  }

 private:
  static void error(Resp& rs, grpc::StatusCode code, const char* message) {
    auto* e = rs.mutable_error_response();
    e->set_error_code(static_cast<int>(code));
    e->set_error_message(message);
  }
  /// `f` and its transitive dependencies, each once.
  static void files(const gpb::FileDescriptor* f, Resp& rs) {
    std::unordered_set<std::string> seen;
    add_file(f, rs, seen);
  }
  static void add_file(const gpb::FileDescriptor* f, Resp& rs, std::unordered_set<std::string>& seen) {
    if (!seen.insert(f->name()).second) return;
    gpb::FileDescriptorProto proto;
    f->CopyTo(&proto);
    rs.mutable_file_descriptor_response()->add_file_descriptor_proto(proto.SerializeAsString());
    for (int i = 0; i < f->dependency_count(); ++i) add_file(f->dependency(i), rs, seen);
  }

  const std::vector<std::string>& services_;
};

/// One reflection stream: read a request, write its answer, repeat until the client half-closes.
template <class Req, class Resp>
class reflection_stream final : public grpc::ServerBidiReactor<Req, Resp> {
 public:
  explicit reflection_stream(std::shared_ptr<const std::vector<std::string>> services)
      : services_(std::move(services)), answerer_(*services_) {
    this->StartRead(&rq_);
  }
  void OnReadDone(bool ok) override {
    if (!ok) {  // half-close (or a broken stream): done
      this->Finish(grpc::Status::OK);
      return;
    }
    rs_.Clear();
    answerer_.answer(rq_, rs_);
    this->StartWrite(&rs_);
  }
  void OnWriteDone(bool ok) override {
    if (!ok) {
      this->Finish(grpc::Status(grpc::StatusCode::UNKNOWN, "write failed"));
      return;
    }
    this->StartRead(&rq_);
  }
  void OnDone() override { delete this; }

 private:
  std::shared_ptr<const std::vector<std::string>> services_;
  answerer<Req, Resp> answerer_;
  Req rq_;
  Resp rs_;
};

template <class Base, class Req, class Resp>
class reflection_service final : public Base {
 public:
  explicit reflection_service(std::shared_ptr<const std::vector<std::string>> services)
      : services_(std::move(services)) {}
  grpc::ServerBidiReactor<Req, Resp>* ServerReflectionInfo(grpc::CallbackServerContext*) override {
    return new reflection_stream<Req, Resp>(services_);
  }

 private:
  std::shared_ptr<const std::vector<std::string>> services_;  // shared by both versions and every stream
};

}  // namespace

std::vector<std::unique_ptr<grpc::Service>> make_reflection_services(std::vector<std::string> service_names) {
  namespace v1 = grpc::reflection::v1;
  namespace v1a = grpc::reflection::v1alpha;
  // grpc++'s health service is not built from libprotobuf messages, so health.proto's descriptor is only in the
  // generated pool when something links it: this reference does (and lets reflection describe grpc.health.v1).
  (void)grpc::health::v1::HealthCheckRequest::descriptor();
  service_names.push_back(v1::ServerReflection::service_full_name());
  service_names.push_back(v1a::ServerReflection::service_full_name());
  auto names = std::make_shared<const std::vector<std::string>>(std::move(service_names));
  std::vector<std::unique_ptr<grpc::Service>> out;
  out.push_back(std::make_unique<reflection_service<v1::ServerReflection::CallbackService, v1::ServerReflectionRequest,
                                                    v1::ServerReflectionResponse>>(names));
  out.push_back(
      std::make_unique<reflection_service<v1a::ServerReflection::CallbackService, v1a::ServerReflectionRequest,
                                          v1a::ServerReflectionResponse>>(names));
  return out;
}

}  // namespace turret::grpc_frontend

from google.api import annotations_pb2 as _annotations_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class GetCapacityCalculationRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class CapacityConfiguration(_message.Message):
    __slots__ = ("concurrent_per_process", "processes_per_instance", "capacity_buffer", "queue_multiplier")
    CONCURRENT_PER_PROCESS_FIELD_NUMBER: _ClassVar[int]
    PROCESSES_PER_INSTANCE_FIELD_NUMBER: _ClassVar[int]
    CAPACITY_BUFFER_FIELD_NUMBER: _ClassVar[int]
    QUEUE_MULTIPLIER_FIELD_NUMBER: _ClassVar[int]
    concurrent_per_process: int
    processes_per_instance: int
    capacity_buffer: float
    queue_multiplier: int
    def __init__(self, concurrent_per_process: _Optional[int] = ..., processes_per_instance: _Optional[int] = ..., capacity_buffer: _Optional[float] = ..., queue_multiplier: _Optional[int] = ...) -> None: ...

class ProcessGroupCount(_message.Message):
    __slots__ = ("service_type", "service_name", "healthy_processes", "is_chat_rest")
    SERVICE_TYPE_FIELD_NUMBER: _ClassVar[int]
    SERVICE_NAME_FIELD_NUMBER: _ClassVar[int]
    HEALTHY_PROCESSES_FIELD_NUMBER: _ClassVar[int]
    IS_CHAT_REST_FIELD_NUMBER: _ClassVar[int]
    service_type: str
    service_name: str
    healthy_processes: int
    is_chat_rest: bool
    def __init__(self, service_type: _Optional[str] = ..., service_name: _Optional[str] = ..., healthy_processes: _Optional[int] = ..., is_chat_rest: _Optional[bool] = ...) -> None: ...

class ProcessGroupCounts(_message.Message):
    __slots__ = ("groups",)
    GROUPS_FIELD_NUMBER: _ClassVar[int]
    groups: _containers.RepeatedCompositeFieldContainer[ProcessGroupCount]
    def __init__(self, groups: _Optional[_Iterable[_Union[ProcessGroupCount, _Mapping]]] = ...) -> None: ...

class ActualProcesses(_message.Message):
    __slots__ = ("instances_found", "processes_per_instance")
    class ProcessesPerInstanceEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: ProcessGroupCounts
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[ProcessGroupCounts, _Mapping]] = ...) -> None: ...
    INSTANCES_FOUND_FIELD_NUMBER: _ClassVar[int]
    PROCESSES_PER_INSTANCE_FIELD_NUMBER: _ClassVar[int]
    instances_found: _containers.RepeatedScalarFieldContainer[str]
    processes_per_instance: _containers.MessageMap[str, ProcessGroupCounts]
    def __init__(self, instances_found: _Optional[_Iterable[str]] = ..., processes_per_instance: _Optional[_Mapping[str, ProcessGroupCounts]] = ...) -> None: ...

class CalculationsBreakdown(_message.Message):
    __slots__ = ("step_1_config", "step_2_processes", "step_3_total_concurrent", "step_4_effective", "step_5_queue", "step_6_total_per_instance", "step_7_instances", "step_8_system_total")
    STEP_1_CONFIG_FIELD_NUMBER: _ClassVar[int]
    STEP_2_PROCESSES_FIELD_NUMBER: _ClassVar[int]
    STEP_3_TOTAL_CONCURRENT_FIELD_NUMBER: _ClassVar[int]
    STEP_4_EFFECTIVE_FIELD_NUMBER: _ClassVar[int]
    STEP_5_QUEUE_FIELD_NUMBER: _ClassVar[int]
    STEP_6_TOTAL_PER_INSTANCE_FIELD_NUMBER: _ClassVar[int]
    STEP_7_INSTANCES_FIELD_NUMBER: _ClassVar[int]
    STEP_8_SYSTEM_TOTAL_FIELD_NUMBER: _ClassVar[int]
    step_1_config: str
    step_2_processes: str
    step_3_total_concurrent: str
    step_4_effective: str
    step_5_queue: str
    step_6_total_per_instance: str
    step_7_instances: str
    step_8_system_total: str
    def __init__(self, step_1_config: _Optional[str] = ..., step_2_processes: _Optional[str] = ..., step_3_total_concurrent: _Optional[str] = ..., step_4_effective: _Optional[str] = ..., step_5_queue: _Optional[str] = ..., step_6_total_per_instance: _Optional[str] = ..., step_7_instances: _Optional[str] = ..., step_8_system_total: _Optional[str] = ...) -> None: ...

class CapacityTotals(_message.Message):
    __slots__ = ("healthy_chat_rest_processes", "total_concurrent", "effective", "queue_capacity", "total_per_instance", "instances", "system_total", "anonymous_limit", "registered_limit", "privileged_limit")
    HEALTHY_CHAT_REST_PROCESSES_FIELD_NUMBER: _ClassVar[int]
    TOTAL_CONCURRENT_FIELD_NUMBER: _ClassVar[int]
    EFFECTIVE_FIELD_NUMBER: _ClassVar[int]
    QUEUE_CAPACITY_FIELD_NUMBER: _ClassVar[int]
    TOTAL_PER_INSTANCE_FIELD_NUMBER: _ClassVar[int]
    INSTANCES_FIELD_NUMBER: _ClassVar[int]
    SYSTEM_TOTAL_FIELD_NUMBER: _ClassVar[int]
    ANONYMOUS_LIMIT_FIELD_NUMBER: _ClassVar[int]
    REGISTERED_LIMIT_FIELD_NUMBER: _ClassVar[int]
    PRIVILEGED_LIMIT_FIELD_NUMBER: _ClassVar[int]
    healthy_chat_rest_processes: int
    total_concurrent: int
    effective: int
    queue_capacity: int
    total_per_instance: _containers.RepeatedScalarFieldContainer[int]
    instances: int
    system_total: int
    anonymous_limit: int
    registered_limit: int
    privileged_limit: int
    def __init__(self, healthy_chat_rest_processes: _Optional[int] = ..., total_concurrent: _Optional[int] = ..., effective: _Optional[int] = ..., queue_capacity: _Optional[int] = ..., total_per_instance: _Optional[_Iterable[int]] = ..., instances: _Optional[int] = ..., system_total: _Optional[int] = ..., anonymous_limit: _Optional[int] = ..., registered_limit: _Optional[int] = ..., privileged_limit: _Optional[int] = ...) -> None: ...

class CapacityCalculation(_message.Message):
    __slots__ = ("configuration", "actual_processes", "calculations_breakdown", "totals")
    CONFIGURATION_FIELD_NUMBER: _ClassVar[int]
    ACTUAL_PROCESSES_FIELD_NUMBER: _ClassVar[int]
    CALCULATIONS_BREAKDOWN_FIELD_NUMBER: _ClassVar[int]
    TOTALS_FIELD_NUMBER: _ClassVar[int]
    configuration: CapacityConfiguration
    actual_processes: ActualProcesses
    calculations_breakdown: CalculationsBreakdown
    totals: CapacityTotals
    def __init__(self, configuration: _Optional[_Union[CapacityConfiguration, _Mapping]] = ..., actual_processes: _Optional[_Union[ActualProcesses, _Mapping]] = ..., calculations_breakdown: _Optional[_Union[CalculationsBreakdown, _Mapping]] = ..., totals: _Optional[_Union[CapacityTotals, _Mapping]] = ...) -> None: ...

class GetSystemStatusRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ProcessGroupStatus(_message.Message):
    __slots__ = ("processes", "actual_processes", "healthy_processes", "load", "capacity", "health", "is_chat_rest")
    PROCESSES_FIELD_NUMBER: _ClassVar[int]
    ACTUAL_PROCESSES_FIELD_NUMBER: _ClassVar[int]
    HEALTHY_PROCESSES_FIELD_NUMBER: _ClassVar[int]
    LOAD_FIELD_NUMBER: _ClassVar[int]
    CAPACITY_FIELD_NUMBER: _ClassVar[int]
    HEALTH_FIELD_NUMBER: _ClassVar[int]
    IS_CHAT_REST_FIELD_NUMBER: _ClassVar[int]
    processes: int
    actual_processes: int
    healthy_processes: int
    load: int
    capacity: int
    health: str
    is_chat_rest: bool
    def __init__(self, processes: _Optional[int] = ..., actual_processes: _Optional[int] = ..., healthy_processes: _Optional[int] = ..., load: _Optional[int] = ..., capacity: _Optional[int] = ..., health: _Optional[str] = ..., is_chat_rest: _Optional[bool] = ...) -> None: ...

class InstanceStatus(_message.Message):
    __slots__ = ("groups",)
    class GroupsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: ProcessGroupStatus
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[ProcessGroupStatus, _Mapping]] = ...) -> None: ...
    GROUPS_FIELD_NUMBER: _ClassVar[int]
    groups: _containers.MessageMap[str, ProcessGroupStatus]
    def __init__(self, groups: _Optional[_Mapping[str, ProcessGroupStatus]] = ...) -> None: ...

class GlobalGroupStats(_message.Message):
    __slots__ = ("expected", "actual", "healthy", "load", "capacity", "utilization_percent")
    EXPECTED_FIELD_NUMBER: _ClassVar[int]
    ACTUAL_FIELD_NUMBER: _ClassVar[int]
    HEALTHY_FIELD_NUMBER: _ClassVar[int]
    LOAD_FIELD_NUMBER: _ClassVar[int]
    CAPACITY_FIELD_NUMBER: _ClassVar[int]
    UTILIZATION_PERCENT_FIELD_NUMBER: _ClassVar[int]
    expected: int
    actual: int
    healthy: int
    load: int
    capacity: int
    utilization_percent: float
    def __init__(self, expected: _Optional[int] = ..., actual: _Optional[int] = ..., healthy: _Optional[int] = ..., load: _Optional[int] = ..., capacity: _Optional[int] = ..., utilization_percent: _Optional[float] = ...) -> None: ...

class EnhancedQueueStats(_message.Message):
    __slots__ = ("total_queue", "weighted_max_capacity", "pressure_ratio", "accepting_anonymous", "accepting_registered", "accepting_privileged", "queued_privileged", "queued_registered", "queued_anonymous", "leased", "dead_letters")
    TOTAL_QUEUE_FIELD_NUMBER: _ClassVar[int]
    WEIGHTED_MAX_CAPACITY_FIELD_NUMBER: _ClassVar[int]
    PRESSURE_RATIO_FIELD_NUMBER: _ClassVar[int]
    ACCEPTING_ANONYMOUS_FIELD_NUMBER: _ClassVar[int]
    ACCEPTING_REGISTERED_FIELD_NUMBER: _ClassVar[int]
    ACCEPTING_PRIVILEGED_FIELD_NUMBER: _ClassVar[int]
    QUEUED_PRIVILEGED_FIELD_NUMBER: _ClassVar[int]
    QUEUED_REGISTERED_FIELD_NUMBER: _ClassVar[int]
    QUEUED_ANONYMOUS_FIELD_NUMBER: _ClassVar[int]
    LEASED_FIELD_NUMBER: _ClassVar[int]
    DEAD_LETTERS_FIELD_NUMBER: _ClassVar[int]
    total_queue: int
    weighted_max_capacity: int
    pressure_ratio: float
    accepting_anonymous: bool
    accepting_registered: bool
    accepting_privileged: bool
    queued_privileged: int
    queued_registered: int
    queued_anonymous: int
    leased: int
    dead_letters: int
    def __init__(self, total_queue: _Optional[int] = ..., weighted_max_capacity: _Optional[int] = ..., pressure_ratio: _Optional[float] = ..., accepting_anonymous: _Optional[bool] = ..., accepting_registered: _Optional[bool] = ..., accepting_privileged: _Optional[bool] = ..., queued_privileged: _Optional[int] = ..., queued_registered: _Optional[int] = ..., queued_anonymous: _Optional[int] = ..., leased: _Optional[int] = ..., dead_letters: _Optional[int] = ...) -> None: ...

class ThrottlingPeriod(_message.Message):
    __slots__ = ("total_requests", "total_throttled", "throttle_rate", "rate_limit_429", "backpressure_503", "circuit_open_503", "throughput_per_hour_by_user_type", "throughput_per_hour_by_transport", "top_sessions")
    class ThroughputPerHourByUserTypeEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    class ThroughputPerHourByTransportEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    TOTAL_REQUESTS_FIELD_NUMBER: _ClassVar[int]
    TOTAL_THROTTLED_FIELD_NUMBER: _ClassVar[int]
    THROTTLE_RATE_FIELD_NUMBER: _ClassVar[int]
    RATE_LIMIT_429_FIELD_NUMBER: _ClassVar[int]
    BACKPRESSURE_503_FIELD_NUMBER: _ClassVar[int]
    CIRCUIT_OPEN_503_FIELD_NUMBER: _ClassVar[int]
    THROUGHPUT_PER_HOUR_BY_USER_TYPE_FIELD_NUMBER: _ClassVar[int]
    THROUGHPUT_PER_HOUR_BY_TRANSPORT_FIELD_NUMBER: _ClassVar[int]
    TOP_SESSIONS_FIELD_NUMBER: _ClassVar[int]
    total_requests: int
    total_throttled: int
    throttle_rate: float
    rate_limit_429: int
    backpressure_503: int
    circuit_open_503: int
    throughput_per_hour_by_user_type: _containers.ScalarMap[str, float]
    throughput_per_hour_by_transport: _containers.ScalarMap[str, float]
    top_sessions: _containers.RepeatedCompositeFieldContainer[ThrottledSession]
    def __init__(self, total_requests: _Optional[int] = ..., total_throttled: _Optional[int] = ..., throttle_rate: _Optional[float] = ..., rate_limit_429: _Optional[int] = ..., backpressure_503: _Optional[int] = ..., circuit_open_503: _Optional[int] = ..., throughput_per_hour_by_user_type: _Optional[_Mapping[str, float]] = ..., throughput_per_hour_by_transport: _Optional[_Mapping[str, float]] = ..., top_sessions: _Optional[_Iterable[_Union[ThrottledSession, _Mapping]]] = ...) -> None: ...

class ThrottledSession(_message.Message):
    __slots__ = ("session_id", "throttled")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    THROTTLED_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    throttled: int
    def __init__(self, session_id: _Optional[str] = ..., throttled: _Optional[int] = ...) -> None: ...

class CapacityMetricsConfiguration(_message.Message):
    __slots__ = ("configured_concurrent_per_process", "configured_processes_per_instance", "capacity_buffer_percent")
    CONFIGURED_CONCURRENT_PER_PROCESS_FIELD_NUMBER: _ClassVar[int]
    CONFIGURED_PROCESSES_PER_INSTANCE_FIELD_NUMBER: _ClassVar[int]
    CAPACITY_BUFFER_PERCENT_FIELD_NUMBER: _ClassVar[int]
    configured_concurrent_per_process: int
    configured_processes_per_instance: int
    capacity_buffer_percent: float
    def __init__(self, configured_concurrent_per_process: _Optional[int] = ..., configured_processes_per_instance: _Optional[int] = ..., capacity_buffer_percent: _Optional[float] = ...) -> None: ...

class CapacityMetricsActualRuntime(_message.Message):
    __slots__ = ("actual_healthy_processes_per_instance", "actual_total_capacity_per_instance")
    ACTUAL_HEALTHY_PROCESSES_PER_INSTANCE_FIELD_NUMBER: _ClassVar[int]
    ACTUAL_TOTAL_CAPACITY_PER_INSTANCE_FIELD_NUMBER: _ClassVar[int]
    actual_healthy_processes_per_instance: float
    actual_total_capacity_per_instance: float
    def __init__(self, actual_healthy_processes_per_instance: _Optional[float] = ..., actual_total_capacity_per_instance: _Optional[float] = ...) -> None: ...

class ProcessesVsConfigured(_message.Message):
    __slots__ = ("process_deficit", "expected_processes", "actual_processes")
    PROCESS_DEFICIT_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_PROCESSES_FIELD_NUMBER: _ClassVar[int]
    ACTUAL_PROCESSES_FIELD_NUMBER: _ClassVar[int]
    process_deficit: int
    expected_processes: int
    actual_processes: int
    def __init__(self, process_deficit: _Optional[int] = ..., expected_processes: _Optional[int] = ..., actual_processes: _Optional[int] = ...) -> None: ...

class HealthMetrics(_message.Message):
    __slots__ = ("process_health_ratio", "processes_vs_configured")
    PROCESS_HEALTH_RATIO_FIELD_NUMBER: _ClassVar[int]
    PROCESSES_VS_CONFIGURED_FIELD_NUMBER: _ClassVar[int]
    process_health_ratio: float
    processes_vs_configured: ProcessesVsConfigured
    def __init__(self, process_health_ratio: _Optional[float] = ..., processes_vs_configured: _Optional[_Union[ProcessesVsConfigured, _Mapping]] = ...) -> None: ...

class CapacityMetrics(_message.Message):
    __slots__ = ("configuration", "actual_runtime", "health_metrics")
    CONFIGURATION_FIELD_NUMBER: _ClassVar[int]
    ACTUAL_RUNTIME_FIELD_NUMBER: _ClassVar[int]
    HEALTH_METRICS_FIELD_NUMBER: _ClassVar[int]
    configuration: CapacityMetricsConfiguration
    actual_runtime: CapacityMetricsActualRuntime
    health_metrics: HealthMetrics
    def __init__(self, configuration: _Optional[_Union[CapacityMetricsConfiguration, _Mapping]] = ..., actual_runtime: _Optional[_Union[CapacityMetricsActualRuntime, _Mapping]] = ..., health_metrics: _Optional[_Union[HealthMetrics, _Mapping]] = ...) -> None: ...

class CapacityTransparency(_message.Message):
    __slots__ = ("capacity_metrics", "performance_warnings")
    CAPACITY_METRICS_FIELD_NUMBER: _ClassVar[int]
    PERFORMANCE_WARNINGS_FIELD_NUMBER: _ClassVar[int]
    capacity_metrics: CapacityMetrics
    performance_warnings: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, capacity_metrics: _Optional[_Union[CapacityMetrics, _Mapping]] = ..., performance_warnings: _Optional[_Iterable[str]] = ...) -> None: ...

class SystemStatus(_message.Message):
    __slots__ = ("instances", "global_stats", "enhanced_queue_stats", "throttling_by_period", "capacity_transparency", "circuit_breakers", "alerts")
    class InstancesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: InstanceStatus
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[InstanceStatus, _Mapping]] = ...) -> None: ...
    class GlobalStatsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: GlobalGroupStats
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[GlobalGroupStats, _Mapping]] = ...) -> None: ...
    class ThrottlingByPeriodEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: ThrottlingPeriod
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[ThrottlingPeriod, _Mapping]] = ...) -> None: ...
    INSTANCES_FIELD_NUMBER: _ClassVar[int]
    GLOBAL_STATS_FIELD_NUMBER: _ClassVar[int]
    ENHANCED_QUEUE_STATS_FIELD_NUMBER: _ClassVar[int]
    THROTTLING_BY_PERIOD_FIELD_NUMBER: _ClassVar[int]
    CAPACITY_TRANSPARENCY_FIELD_NUMBER: _ClassVar[int]
    CIRCUIT_BREAKERS_FIELD_NUMBER: _ClassVar[int]
    ALERTS_FIELD_NUMBER: _ClassVar[int]
    instances: _containers.MessageMap[str, InstanceStatus]
    global_stats: _containers.MessageMap[str, GlobalGroupStats]
    enhanced_queue_stats: EnhancedQueueStats
    throttling_by_period: _containers.MessageMap[str, ThrottlingPeriod]
    capacity_transparency: CapacityTransparency
    circuit_breakers: CircuitBreakers
    alerts: _containers.RepeatedCompositeFieldContainer[Alert]
    def __init__(self, instances: _Optional[_Mapping[str, InstanceStatus]] = ..., global_stats: _Optional[_Mapping[str, GlobalGroupStats]] = ..., enhanced_queue_stats: _Optional[_Union[EnhancedQueueStats, _Mapping]] = ..., throttling_by_period: _Optional[_Mapping[str, ThrottlingPeriod]] = ..., capacity_transparency: _Optional[_Union[CapacityTransparency, _Mapping]] = ..., circuit_breakers: _Optional[_Union[CircuitBreakers, _Mapping]] = ..., alerts: _Optional[_Iterable[_Union[Alert, _Mapping]]] = ...) -> None: ...

class ListCircuitBreakersRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class CircuitSummary(_message.Message):
    __slots__ = ("total_circuits", "open_circuits", "half_open_circuits", "closed_circuits")
    TOTAL_CIRCUITS_FIELD_NUMBER: _ClassVar[int]
    OPEN_CIRCUITS_FIELD_NUMBER: _ClassVar[int]
    HALF_OPEN_CIRCUITS_FIELD_NUMBER: _ClassVar[int]
    CLOSED_CIRCUITS_FIELD_NUMBER: _ClassVar[int]
    total_circuits: int
    open_circuits: int
    half_open_circuits: int
    closed_circuits: int
    def __init__(self, total_circuits: _Optional[int] = ..., open_circuits: _Optional[int] = ..., half_open_circuits: _Optional[int] = ..., closed_circuits: _Optional[int] = ...) -> None: ...

class Circuit(_message.Message):
    __slots__ = ("state", "failure_count", "total_requests", "current_window_failures", "consecutive_failures", "opened_at")
    STATE_FIELD_NUMBER: _ClassVar[int]
    FAILURE_COUNT_FIELD_NUMBER: _ClassVar[int]
    TOTAL_REQUESTS_FIELD_NUMBER: _ClassVar[int]
    CURRENT_WINDOW_FAILURES_FIELD_NUMBER: _ClassVar[int]
    CONSECUTIVE_FAILURES_FIELD_NUMBER: _ClassVar[int]
    OPENED_AT_FIELD_NUMBER: _ClassVar[int]
    state: str
    failure_count: int
    total_requests: int
    current_window_failures: int
    consecutive_failures: int
    opened_at: int
    def __init__(self, state: _Optional[str] = ..., failure_count: _Optional[int] = ..., total_requests: _Optional[int] = ..., current_window_failures: _Optional[int] = ..., consecutive_failures: _Optional[int] = ..., opened_at: _Optional[int] = ...) -> None: ...

class CircuitBreakers(_message.Message):
    __slots__ = ("summary", "circuits")
    class CircuitsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: Circuit
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[Circuit, _Mapping]] = ...) -> None: ...
    SUMMARY_FIELD_NUMBER: _ClassVar[int]
    CIRCUITS_FIELD_NUMBER: _ClassVar[int]
    summary: CircuitSummary
    circuits: _containers.MessageMap[str, Circuit]
    def __init__(self, summary: _Optional[_Union[CircuitSummary, _Mapping]] = ..., circuits: _Optional[_Mapping[str, Circuit]] = ...) -> None: ...

class ResetCircuitBreakerRequest(_message.Message):
    __slots__ = ("circuit_name",)
    CIRCUIT_NAME_FIELD_NUMBER: _ClassVar[int]
    circuit_name: str
    def __init__(self, circuit_name: _Optional[str] = ...) -> None: ...

class ResetCircuitBreakerResponse(_message.Message):
    __slots__ = ("circuit_name", "state")
    CIRCUIT_NAME_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    circuit_name: str
    state: str
    def __init__(self, circuit_name: _Optional[str] = ..., state: _Optional[str] = ...) -> None: ...

class ConfigChange(_message.Message):
    __slots__ = ("concurrent_per_process", "processes_per_instance", "capacity_buffer", "queue_multiplier", "anonymous_threshold", "registered_threshold", "hard_limit_threshold", "runtime_json")
    CONCURRENT_PER_PROCESS_FIELD_NUMBER: _ClassVar[int]
    PROCESSES_PER_INSTANCE_FIELD_NUMBER: _ClassVar[int]
    CAPACITY_BUFFER_FIELD_NUMBER: _ClassVar[int]
    QUEUE_MULTIPLIER_FIELD_NUMBER: _ClassVar[int]
    ANONYMOUS_THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    REGISTERED_THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    HARD_LIMIT_THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    RUNTIME_JSON_FIELD_NUMBER: _ClassVar[int]
    concurrent_per_process: int
    processes_per_instance: int
    capacity_buffer: float
    queue_multiplier: int
    anonymous_threshold: float
    registered_threshold: float
    hard_limit_threshold: float
    runtime_json: str
    def __init__(self, concurrent_per_process: _Optional[int] = ..., processes_per_instance: _Optional[int] = ..., capacity_buffer: _Optional[float] = ..., queue_multiplier: _Optional[int] = ..., anonymous_threshold: _Optional[float] = ..., registered_threshold: _Optional[float] = ..., hard_limit_threshold: _Optional[float] = ..., runtime_json: _Optional[str] = ...) -> None: ...

class FieldError(_message.Message):
    __slots__ = ("field", "message")
    FIELD_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    field: str
    message: str
    def __init__(self, field: _Optional[str] = ..., message: _Optional[str] = ...) -> None: ...

class ValidateConfigResponse(_message.Message):
    __slots__ = ("valid", "errors", "warnings", "preview")
    VALID_FIELD_NUMBER: _ClassVar[int]
    ERRORS_FIELD_NUMBER: _ClassVar[int]
    WARNINGS_FIELD_NUMBER: _ClassVar[int]
    PREVIEW_FIELD_NUMBER: _ClassVar[int]
    valid: bool
    errors: _containers.RepeatedCompositeFieldContainer[FieldError]
    warnings: _containers.RepeatedScalarFieldContainer[str]
    preview: CapacityCalculation
    def __init__(self, valid: _Optional[bool] = ..., errors: _Optional[_Iterable[_Union[FieldError, _Mapping]]] = ..., warnings: _Optional[_Iterable[str]] = ..., preview: _Optional[_Union[CapacityCalculation, _Mapping]] = ...) -> None: ...

class UpdateConfigResponse(_message.Message):
    __slots__ = ("applied", "version", "errors", "warnings", "capacity")
    APPLIED_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    ERRORS_FIELD_NUMBER: _ClassVar[int]
    WARNINGS_FIELD_NUMBER: _ClassVar[int]
    CAPACITY_FIELD_NUMBER: _ClassVar[int]
    applied: bool
    version: int
    errors: _containers.RepeatedCompositeFieldContainer[FieldError]
    warnings: _containers.RepeatedScalarFieldContainer[str]
    capacity: CapacityCalculation
    def __init__(self, applied: _Optional[bool] = ..., version: _Optional[int] = ..., errors: _Optional[_Iterable[_Union[FieldError, _Mapping]]] = ..., warnings: _Optional[_Iterable[str]] = ..., capacity: _Optional[_Union[CapacityCalculation, _Mapping]] = ...) -> None: ...

class GetThrottlingStatsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ThrottlingStats(_message.Message):
    __slots__ = ("throttling_by_period",)
    class ThrottlingByPeriodEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: ThrottlingPeriod
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[ThrottlingPeriod, _Mapping]] = ...) -> None: ...
    THROTTLING_BY_PERIOD_FIELD_NUMBER: _ClassVar[int]
    throttling_by_period: _containers.MessageMap[str, ThrottlingPeriod]
    def __init__(self, throttling_by_period: _Optional[_Mapping[str, ThrottlingPeriod]] = ...) -> None: ...

class ListAlertsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class Alert(_message.Message):
    __slots__ = ("severity", "code", "message", "since_ms")
    SEVERITY_FIELD_NUMBER: _ClassVar[int]
    CODE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    SINCE_MS_FIELD_NUMBER: _ClassVar[int]
    severity: str
    code: str
    message: str
    since_ms: int
    def __init__(self, severity: _Optional[str] = ..., code: _Optional[str] = ..., message: _Optional[str] = ..., since_ms: _Optional[int] = ...) -> None: ...

class Alerts(_message.Message):
    __slots__ = ("alerts",)
    ALERTS_FIELD_NUMBER: _ClassVar[int]
    alerts: _containers.RepeatedCompositeFieldContainer[Alert]
    def __init__(self, alerts: _Optional[_Iterable[_Union[Alert, _Mapping]]] = ...) -> None: ...

class GetEnvironmentRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class EnvironmentValue(_message.Message):
    __slots__ = ("value", "source")
    VALUE_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    value: str
    source: str
    def __init__(self, value: _Optional[str] = ..., source: _Optional[str] = ...) -> None: ...

class Environment(_message.Message):
    __slots__ = ("values",)
    class ValuesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: EnvironmentValue
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[EnvironmentValue, _Mapping]] = ...) -> None: ...
    VALUES_FIELD_NUMBER: _ClassVar[int]
    values: _containers.MessageMap[str, EnvironmentValue]
    def __init__(self, values: _Optional[_Mapping[str, EnvironmentValue]] = ...) -> None: ...

class GetRlsConfigRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class RlsRule(_message.Message):
    __slots__ = ("domain", "stats_key", "limit", "name", "shadow_mode", "detailed_metric", "replaces")
    DOMAIN_FIELD_NUMBER: _ClassVar[int]
    STATS_KEY_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    SHADOW_MODE_FIELD_NUMBER: _ClassVar[int]
    DETAILED_METRIC_FIELD_NUMBER: _ClassVar[int]
    REPLACES_FIELD_NUMBER: _ClassVar[int]
    domain: str
    stats_key: str
    limit: str
    name: str
    shadow_mode: bool
    detailed_metric: bool
    replaces: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, domain: _Optional[str] = ..., stats_key: _Optional[str] = ..., limit: _Optional[str] = ..., name: _Optional[str] = ..., shadow_mode: _Optional[bool] = ..., detailed_metric: _Optional[bool] = ..., replaces: _Optional[_Iterable[str]] = ...) -> None: ...

class RlsDomain(_message.Message):
    __slots__ = ("domain", "source", "rules")
    DOMAIN_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    RULES_FIELD_NUMBER: _ClassVar[int]
    domain: str
    source: str
    rules: _containers.RepeatedCompositeFieldContainer[RlsRule]
    def __init__(self, domain: _Optional[str] = ..., source: _Optional[str] = ..., rules: _Optional[_Iterable[_Union[RlsRule, _Mapping]]] = ...) -> None: ...

class RlsConfig(_message.Message):
    __slots__ = ("path", "version", "loaded_at_ms", "load_errors", "shadow_mode", "ratelimit_headers", "domains", "last_load")
    PATH_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    LOADED_AT_MS_FIELD_NUMBER: _ClassVar[int]
    LOAD_ERRORS_FIELD_NUMBER: _ClassVar[int]
    SHADOW_MODE_FIELD_NUMBER: _ClassVar[int]
    RATELIMIT_HEADERS_FIELD_NUMBER: _ClassVar[int]
    DOMAINS_FIELD_NUMBER: _ClassVar[int]
    LAST_LOAD_FIELD_NUMBER: _ClassVar[int]
    path: str
    version: int
    loaded_at_ms: int
    load_errors: int
    shadow_mode: bool
    ratelimit_headers: bool
    domains: _containers.RepeatedCompositeFieldContainer[RlsDomain]
    last_load: RlsLoad
    def __init__(self, path: _Optional[str] = ..., version: _Optional[int] = ..., loaded_at_ms: _Optional[int] = ..., load_errors: _Optional[int] = ..., shadow_mode: _Optional[bool] = ..., ratelimit_headers: _Optional[bool] = ..., domains: _Optional[_Iterable[_Union[RlsDomain, _Mapping]]] = ..., last_load: _Optional[_Union[RlsLoad, _Mapping]] = ...) -> None: ...

class RlsLoad(_message.Message):
    __slots__ = ("at_ms", "ok", "version", "file", "problems")
    AT_MS_FIELD_NUMBER: _ClassVar[int]
    OK_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    FILE_FIELD_NUMBER: _ClassVar[int]
    PROBLEMS_FIELD_NUMBER: _ClassVar[int]
    at_ms: int
    ok: bool
    version: int
    file: str
    problems: _containers.RepeatedCompositeFieldContainer[RlsLoadProblem]
    def __init__(self, at_ms: _Optional[int] = ..., ok: _Optional[bool] = ..., version: _Optional[int] = ..., file: _Optional[str] = ..., problems: _Optional[_Iterable[_Union[RlsLoadProblem, _Mapping]]] = ...) -> None: ...

class RlsLoadProblem(_message.Message):
    __slots__ = ("key_path", "message")
    KEY_PATH_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    key_path: str
    message: str
    def __init__(self, key_path: _Optional[str] = ..., message: _Optional[str] = ...) -> None: ...

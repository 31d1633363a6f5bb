-- Argo CD health check for every kind of the Azure Identity Operator (identityoperator.dev/*).
-- Install it in argocd-cm under `resource.customizations.health.identityoperator.dev_*` (docs/monitoring.md).
--
-- Healthy:     Ready=True for the current generation.
-- Progressing: no status yet, a generation the operator has not observed, a deletion in progress, or
--              Ready=False for a reason the operator works through on its own (it retries).
-- Suspended:   Ready=False with reason Paused: the object carries
--              `identityoperator.dev/reconcile-policy: skip` and the operator leaves Azure alone for it.
-- Degraded:    Ready=False for a reason that needs a person (invalid spec, missing permission, conflict),
--              or for a reason this script does not know (a newer operator version): better a false alarm
--              than a silent failure.
local hs = {}

-- Reasons of Ready=False that heal without anyone acting: the operator retries or waits for a dependency.
local transient = {
  Reconciling = true,
  Queued = true,
  WaitingForIdentity = true,
  WaitingForPrincipal = true,
  WaitingForRoleDefinition = true,
  Throttled = true,
  AzureError = true,
  Deleting = true,
  OperatorError = true,
}

local function readyCondition(status)
  if status == nil or status.conditions == nil then
    return nil
  end
  for _, condition in ipairs(status.conditions) do
    if condition.type == "Ready" then
      return condition
    end
  end
  return nil
end

local generation = nil
if obj.metadata ~= nil then
  generation = obj.metadata.generation
end
local ready = readyCondition(obj.status)

if obj.metadata ~= nil and obj.metadata.deletionTimestamp ~= nil then
  if ready ~= nil and ready.status == "False" and ready.reason == "DeletionBlocked" then
    hs.status = "Degraded"
    hs.message = ready.message
    return hs
  end
  hs.status = "Progressing"
  hs.message = "Deleting: the operator is cleaning up Azure"
  return hs
end

if ready == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to reconcile the object"
  return hs
end

-- A status written for an older spec says nothing about the current one.
local observed = nil
if obj.status ~= nil then
  observed = obj.status.observedGeneration
end
if ready.observedGeneration ~= nil then
  observed = ready.observedGeneration
end
if generation ~= nil and (observed == nil or observed < generation) then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to reconcile generation " .. tostring(generation)
  return hs
end

local message = ready.message
if message == nil or message == "" then
  message = ready.reason or ""
end

if ready.status == "True" then
  hs.status = "Healthy"
  hs.message = message
  return hs
end

-- Paused on purpose (reconcile-policy: skip): neither converging nor failed.
if ready.status == "False" and ready.reason == "Paused" then
  hs.status = "Suspended"
  hs.message = message
  return hs
end

if ready.status == "False" and not transient[ready.reason] then
  hs.status = "Degraded"
  hs.message = (ready.reason or "NotReady") .. ": " .. message
  return hs
end

hs.status = "Progressing"
hs.message = message
return hs
